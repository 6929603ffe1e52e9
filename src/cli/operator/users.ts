/** The operator's account commands, through the admin API with the admin token. */
import { callGateway, checkAddress } from '../../owner/index.js';
import { adminClient, publicAdminUrl, type OperatorContext } from './context.js';

export interface AddedUser {
  address: string;
  name: string;
  enrolmentToken: string;
  tokenExpires: string;
  /** The command the owner runs on their own machine. */
  ownerCommand: string;
  /** The certificate file to hand the owner (self-signed gateway), or null. */
  certFile: string | null;
}

export interface UserView {
  address: string;
  name: string;
  enrolment: 'pending' | 'enrolled';
  created: string;
  activeDevices?: number;
}

function shellQuote(text: string): string {
  return /^[A-Za-z0-9@._+:/=-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

export async function addUser(
  context: OperatorContext,
  options: { address: string; name?: string; publicUrl?: string },
): Promise<AddedUser> {
  const address = checkAddress(options.address);
  const reply = await callGateway<{
    address: string;
    name: string;
    enrolmentToken: string;
    tokenExpires: string;
  }>(adminClient(context), 'POST', '/v1/users', {
    address,
    ...(options.name !== undefined ? { name: options.name } : {}),
  });
  const gateway = options.publicUrl ?? publicAdminUrl(context);
  const ownerCommand = [
    'recrypt owner init',
    shellQuote(reply.address),
    '--token',
    reply.enrolmentToken,
    '--gateway',
    shellQuote(gateway),
    ...(context.selfSigned ? ['--ca', 'gateway-cert.pem'] : []),
  ].join(' ');
  return { ...reply, ownerCommand, certFile: context.selfSigned ? context.certFile : null };
}

export async function listUsers(context: OperatorContext): Promise<UserView[]> {
  return (await callGateway<{ users: UserView[] }>(adminClient(context), 'GET', '/v1/users')).users;
}

export async function removeUser(context: OperatorContext, address: string): Promise<void> {
  const checked = checkAddress(address);
  await callGateway(adminClient(context), 'DELETE', `/v1/users/${encodeURIComponent(checked)}`);
}
