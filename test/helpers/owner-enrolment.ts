/**
 * An account on an in-process admin API (cli-api.ts), added by the operator and enrolled
 * by a fresh test owner, with the owner key the CLI would keep for it: the set-up the
 * owner, pairing and list API tests share.
 */
import type { OwnerKey } from '../../src/owner/index.js';
import {
  ADMIN_TOKEN,
  api,
  enrolBody,
  makeOwner,
  type ApiGateway,
  type TestOwner,
} from './cli-api.js';

export interface EnrolledOwner {
  owner: TestOwner;
  key: OwnerKey;
}

/** Adds `address` (with a display name when given) and enrols it; throws when either is refused. */
export async function enrolOwner(
  gw: ApiGateway,
  address: string,
  name?: string,
): Promise<EnrolledOwner> {
  const owner = await makeOwner(address);
  const added = await api(gw, 'POST', '/v1/users', {
    token: ADMIN_TOKEN,
    body: { address, ...(name === undefined ? {} : { name }) },
  });
  if (added.status !== 201) throw new Error(`adding ${address} answered ${added.status}`);
  const enrolled = await api(gw, 'POST', '/v1/enrol', {
    body: enrolBody(owner, added.json.enrolmentToken as string),
  });
  if (enrolled.status !== 200) throw new Error(`enrolling ${address} answered ${enrolled.status}`);
  const key: OwnerKey = {
    address,
    gateway: `https://127.0.0.1:${gw.admin.port}`,
    gatewayCa: gw.cert,
    ownerCaSecret: owner.caSecret,
    ownerCaCertificate: owner.ca,
    groupSecret: owner.groupSecret,
    groupCertificate: owner.group,
  };
  return { owner, key };
}
