/** The operator's account commands, through the admin API with the admin token. */
import { callGateway, checkAddress, OwnerError } from '../../owner/index.js';
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
  /** Set when the owner's URL names this machine's loopback: a hint what to configure. */
  loopbackNote: string | null;
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
  return {
    ...reply,
    ownerCommand: ownerCommand(context, reply.address, reply.enrolmentToken, options.publicUrl),
    certFile: context.ownerCaFile,
    loopbackNote: loopbackNote(context, options.publicUrl),
  };
}

/**
 * The owner's URL is useless from another machine when it names loopback (no `hostname`
 * configured and the public listener on 127.0.0.1, the embedded default).
 */
function loopbackNote(context: OperatorContext, publicUrl: string | undefined): string | null {
  const url = publicUrl ?? publicAdminUrl(context);
  let host: string;
  try {
    host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  } catch {
    return null;
  }
  if (!/^(127\.|::1$|localhost$)/i.test(host)) return null;
  return (
    `note: ${url} reaches this machine only; for owners elsewhere set \`hostname\` ` +
    `(the public name) and \`admin.host\` (where the public listener listens) in the config, ` +
    `or pass --public-url`
  );
}

function ownerCommand(
  context: OperatorContext,
  address: string,
  token: string,
  publicUrl: string | undefined,
): string {
  return [
    'recrypt owner init',
    shellQuote(address),
    '--token',
    token,
    '--gateway',
    shellQuote(publicUrl ?? publicAdminUrl(context)),
    ...(context.ownerCaFile !== null ? ['--ca', 'gateway-cert.pem'] : []),
  ].join(' ');
}

export interface IssuedToken extends Omit<AddedUser, 'name'> {
  /** Devices the reset revoked (0 without a reset). */
  revokedDevices: number;
}

/**
 * A new enrolment token. An enrolled account needs `reset`: the gateway then revokes
 * every device of the account and makes it pending again (docs/admin-api.md).
 */
export async function newToken(
  context: OperatorContext,
  options: { address: string; reset?: boolean; publicUrl?: string },
): Promise<IssuedToken> {
  const address = checkAddress(options.address);
  let reply: {
    address: string;
    enrolmentToken: string;
    tokenExpires: string;
    revokedDevices?: number;
  };
  try {
    reply = await callGateway(
      adminClient(context),
      'POST',
      `/v1/users/${encodeURIComponent(address)}/token`,
      options.reset === true ? { reset: true } : {},
    );
  } catch (error) {
    if (error instanceof OwnerError && error.status === 409) {
      throw new OwnerError(
        'gateway-refused',
        `${address} is enrolled: a new token needs --reset, which revokes all its devices`,
        409,
      );
    }
    throw error;
  }
  return {
    address: reply.address,
    enrolmentToken: reply.enrolmentToken,
    tokenExpires: reply.tokenExpires,
    revokedDevices: reply.revokedDevices ?? 0,
    ownerCommand: ownerCommand(context, reply.address, reply.enrolmentToken, options.publicUrl),
    certFile: context.ownerCaFile,
    loopbackNote: loopbackNote(context, options.publicUrl),
  };
}

export async function listUsers(context: OperatorContext): Promise<UserView[]> {
  return (await callGateway<{ users: UserView[] }>(adminClient(context), 'GET', '/v1/users')).users;
}

export async function removeUser(context: OperatorContext, address: string): Promise<void> {
  const checked = checkAddress(address);
  await callGateway(adminClient(context), 'DELETE', `/v1/users/${encodeURIComponent(checked)}`);
}
