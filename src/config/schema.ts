/**
 * The gateway's one configuration file, validated with zod. Every option has a default
 * that runs the gateway on one machine with nothing else installed (SQLite key store,
 * embedded mail store, self-signed TLS in the data directory, high ports for a
 * non-root start). Production settings are one change each. docs/configuration.md
 * documents every option; keep the two in step.
 */
import { z } from 'zod';

const port = z.number().int().min(1).max(65535);
const host = z.string().min(1);

const tlsFiles = z.strictObject({
  /** PEM private key. */
  key: z.string().min(1),
  /** PEM certificate chain. */
  cert: z.string().min(1),
});

const keyStore = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('sqlite'),
    /** Relative paths are resolved against dataDir. */
    path: z.string().min(1).default('keystore.sqlite'),
  }),
  z.strictObject({ kind: z.literal('redis'), url: z.string().min(1) }),
  z.strictObject({
    kind: z.literal('redis-cluster'),
    nodes: z.array(z.strictObject({ host, port })).min(1),
  }),
  z.strictObject({
    kind: z.literal('redis-sentinel'),
    sentinels: z.array(z.strictObject({ host, port })).min(1),
    name: z.string().min(1),
  }),
]);

const masterCredential = z.strictObject({
  user: z.string().min(1),
  /** Inline secret, or `passwordFile` (preferred). */
  password: z.string().min(1).optional(),
  passwordFile: z.string().min(1).optional(),
});

const mailStore = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('embedded'),
    host: host.default('127.0.0.1'),
    imapPort: port.default(10143),
    lmtpPort: port.default(10024),
  }),
  z.strictObject({
    kind: z.literal('dovecot'),
    imap: z.strictObject({ host, port: port.default(143), tls: z.boolean().default(false) }),
    lmtp: z.strictObject({ host, port: port.default(24) }),
    master: masterCredential,
  }),
]);

export const configSchema = z.strictObject({
  /** Where the gateway keeps its state: key store file, gateway key, TLS, embedded mail. */
  dataDir: z.string().min(1).default('./data'),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** TLS for every listener; generated self-signed into dataDir/tls when absent. */
  tls: tlsFiles.optional(),
  smtp: z
    .strictObject({
      host: host.default('0.0.0.0'),
      port: port.default(2525),
      banner: z.string().default('recrypt gateway ESMTP'),
      maxMessageBytes: z
        .number()
        .int()
        .positive()
        .default(50 * 1024 * 1024),
      /** Domains the MX accepts mail for; empty means the domains of known users. */
      localDomains: z.array(z.string().min(1)).default([]),
      hideSubject: z.boolean().default(false),
    })
    .prefault({}),
  imap: z
    .strictObject({
      host: host.default('0.0.0.0'),
      /** Implicit TLS (993 in production). */
      port: port.default(1993),
      /** STARTTLS (143 in production). */
      starttlsPort: port.default(1143),
      allowPlaintextOnLoopback: z.boolean().default(false),
    })
    .prefault({}),
  admin: z
    .strictObject({
      host: host.default('127.0.0.1'),
      port: port.default(8443),
      /** The operator's token file (created by `recrypt init`). */
      tokenFile: z.string().default('admin.token'),
    })
    .prefault({}),
  keyStore: keyStore.default({ kind: 'sqlite', path: 'keystore.sqlite' }),
  mailStore: mailStore.default({
    kind: 'embedded',
    host: '127.0.0.1',
    imapPort: 10143,
    lmtpPort: 10024,
  }),
});

export type GatewayConfig = z.infer<typeof configSchema>;
