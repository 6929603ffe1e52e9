/**
 * src/profiles — the public mail profile (ProfileMailPublic): the document and its zod
 * schema, owner signatures (JWS ES256 with the key in the header), UDF checks, the HTTPS
 * endpoints that publish it, the client that fetches and verifies it, and SMIMEA DNS
 * records (RFC 8162) for the group certificate. docs/profile.md specifies the format.
 * Everything but http-handler.ts and fetch.ts is pure (no sockets, files or clock).
 */
export { canonicalAddress, isValidAddress, parseAddress, type ParsedAddress } from './address.js';
export {
  ProfileError,
  ProfileFetchError,
  type ProfileErrorCode,
  type ProfileFetchErrorCode,
} from './errors.js';
export {
  MAIL_POLICIES,
  profileMailPublicSchema,
  profilePayloadSchema,
  type MailPolicy,
  type ProfileConnection,
  type ProfileMailPublic,
} from './schema.js';
export {
  PROFILE_JWS_TYP,
  buildProfile,
  ownerUdf,
  signProfile,
  verifyProfile,
  type BuildProfileInput,
  type VerifiedProfile,
  type VerifyProfileOptions,
} from './profile.js';
export {
  CERTIFICATE_MEDIA_TYPE,
  GROUP_CERTIFICATE_FILE,
  PROFILE_MEDIA_TYPE,
  PROFILE_PATH_PREFIX,
  handleProfileRequest,
  matchProfilePath,
  profilePath,
  type ProfileHttpRequest,
  type ProfileHttpResponse,
  type ProfileSource,
} from './routes.js';
export {
  createProfileHandler,
  profileRequestListener,
  type ProfileHandler,
} from './http-handler.js';
export {
  fetchProfile,
  profileUrl,
  type FetchProfileOptions,
  type FetchedProfile,
} from './fetch.js';
export {
  smimeaOwnerName,
  smimeaRecord,
  type SmimeaMatchingType,
  type SmimeaOptions,
  type SmimeaRecord,
  type SmimeaSelector,
  type SmimeaUsage,
} from './smimea.js';
