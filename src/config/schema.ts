/**
 * The gateway's one configuration file, validated with zod. Every option has a default
 * that runs the gateway on one machine with nothing else installed (SQLite key store,
 * embedded mail store, self-signed TLS in the data directory, high ports for a
 * non-root start). Production settings are one change each. docs/configuration.md
 * documents every option; keep the two in step.
 */
import { z } from 'zod';
import { trustedPeers } from '../net/proxy-listener.js';
import { outbound, submission } from './schema-sending.js';
import { duration, host, hostAndPort, port } from './schema-values.js';

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
    /**
     * The LMTP listener is a Unix socket (0600, relative paths in dataDir), never a TCP
     * port: LMTP has no authentication, and any local user could store mail on a port.
     */
    lmtpSocket: z.string().min(1).default('store-lmtp.sock'),
  }),
  z.strictObject({
    kind: z.literal('dovecot'),
    imap: z.strictObject({ host, port: port.default(143), tls: z.boolean().default(false) }),
    lmtp: z.strictObject({ host, port: port.default(24) }),
    master: masterCredential,
  }),
]);

/** Certificates by ACME (RFC 8555) instead of `tls` files (src/acme, docs/deployment.md "ACME"). */
const acme = z.strictObject({
  /** The CA's directory, e.g. https://acme-v02.api.letsencrypt.org/directory. */
  directoryUrl: z.url(),
  /** The account's contact address (expiry notices from the CA). */
  email: z.string().min(3).optional(),
  /** Every name the certificate covers: the MX, IMAP and HTTPS host names. */
  domains: z
    .array(
      z
        .string()
        .regex(
          /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/,
          'a DNS name, e.g. mx.example.org',
        ),
    )
    .min(1),
  challenge: z.enum(['http-01', 'tls-alpn-01']).default('http-01'),
  /** The plain-HTTP listener answering HTTP-01 (the CA connects to port 80). */
  httpPort: port.default(80),
  /** The listener answering TLS-ALPN-01 (the CA connects to port 443). */
  tlsAlpnPort: port.default(443),
  /** Where the challenge listeners bind. */
  host: host.default('0.0.0.0'),
  /** PEM CA certificates to trust for the ACME server's own HTTPS (a private or test CA). */
  caFile: z.string().min(1).optional(),
  /** Renew when the certificate expires within this. */
  renewBefore: duration.prefault('30d'),
  /** How often the expiry is checked (also once at start). */
  checkInterval: duration.prefault('1d'),
});

/**
 * PROXY protocol from load balancers on one listener group (docs/configuration.md "PROXY
 * protocol"); off when absent. With it, only the trusted balancers may connect, and each
 * connection must start with a v1 or v2 header naming the client.
 */
const proxyProtocol = z.strictObject({
  /** Balancer addresses or CIDR ranges, IPv4 or IPv6. */
  trusted: z
    .array(
      z.string().refine(
        (entry) => {
          try {
            trustedPeers([entry]);
            return true;
          } catch {
            return false;
          }
        },
        { message: 'an IP address or CIDR range, e.g. 10.0.0.0/8 or 2001:db8::/32' },
      ),
    )
    .min(1),
  /** The whole header must arrive within this after the connection. */
  headerTimeout: duration.prefault('5s'),
  /** Cap on a v2 header with its TLVs (a v1 line is 107 bytes at most). */
  maxHeaderBytes: z.number().int().min(16).max(65551).default(536),
});

const configObject = z.strictObject({
  /** Where the gateway keeps its state: key store file, gateway key, TLS, embedded mail. */
  dataDir: z.string().min(1).default('./data'),
  /**
   * The gateway's public name: SMTP greeting, Received and Authentication-Results, EHLO
   * when sending, the URL printed for owners, the self-signed certificate. Default: the
   * machine's name (in a container, the container id: set it).
   */
  hostname: z
    .string()
    .regex(
      /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/,
      'a DNS name, e.g. mx.example.org',
    )
    .optional(),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /**
   * Worker threads that encrypt arriving mail, so that more than one core does it and the
   * event loop does not (src/smtp/adapters/encrypt-pool.ts): `auto` is one per core, at most 8.
   */
  workers: z.union([z.literal('auto'), z.number().int().positive().max(64)]).default('auto'),
  /**
   * Gateway processes serving the public listeners on the same ports (Node `cluster`, beside
   * a primary that keeps the single-writer parts: docs/deployment.md "Several processes on
   * one machine"): `auto` is one per core. More than 1 needs the Redis key store.
   */
  processes: z.union([z.literal('auto'), z.number().int().positive().max(64)]).default(1),
  /** TLS for every listener; generated self-signed into dataDir/tls when absent. */
  tls: tlsFiles.optional(),
  /** Certificates from an ACME CA, stored in dataDir/acme and renewed; not with `tls`. */
  acme: acme.optional(),
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
      /** The user or list that gets postmaster@ and abuse@ of every served domain. */
      postmaster: z.string().min(3).optional(),
      /** Extra addresses: alias → the user or list receiving its mail. */
      aliases: z.record(z.string().min(3), z.string().min(3)).default({}),
      /** 450 for mail to a user who has not enrolled yet, this long after the account was made; 550 after. */
      pendingRecipientGrace: duration.prefault('7d'),
      hideSubject: z.boolean().default(false),
      /** Connections at once, all clients together; one more gets 421. */
      maxClients: z.number().int().positive().default(100),
      /** Connections at once from one address; below maxClients (docs/threat-model.md "Limits"). */
      maxClientsPerIp: z.number().int().positive().default(20),
      maxRecipients: z.number().int().positive().default(100),
      /** Idle limit while the MX waits for a command (before DATA, between messages). */
      commandTimeout: duration.prefault('1m'),
      /** Idle limit inside DATA. */
      dataTimeout: duration.prefault('5m'),
      /** Header caps, checked as DATA arrives, before any parser reads the message. */
      maxHeaderBytes: z
        .number()
        .int()
        .positive()
        .default(100 * 1024),
      maxHeaderLines: z.number().int().positive().default(1000),
      maxHeaderFieldBytes: z
        .number()
        .int()
        .positive()
        .default(32 * 1024),
      /** DKIM-Signature fields evaluated per message (the topmost). */
      maxDkimSignatures: z.number().int().nonnegative().default(5),
      /** SPF/DKIM/DMARC checks are stopped after this and recorded as temperror. */
      authTimeout: duration.prefault('20s'),
      /** DNS server (`host:port`) for SPF/DKIM/DMARC lookups; default the system's. */
      resolver: hostAndPort.optional(),
      proxyProtocol: proxyProtocol.optional(),
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
      /** Connections open at once, all clients (docs/threat-model.md, Limits). */
      maxConnections: z.number().int().positive().default(1000),
      maxConnectionsPerIp: z.number().int().positive().default(20),
      /** Logged-in sessions per account and client IP (Dovecot's mail_max_userip_connections). */
      maxSessionsPerUserIp: z.number().int().positive().default(10),
      /** Login checks running at once from one IP; further ones wait their turn. */
      maxLoginsInProgressPerIp: z.number().int().positive().default(4),
      /** From connect to logged in, absolute: then `* BYE` and close. */
      loginTimeoutSeconds: z.number().int().positive().max(3600).default(60),
      /** Both IMAP ports. */
      proxyProtocol: proxyProtocol.optional(),
    })
    .prefault({}),
  admin: z
    .strictObject({
      host: host.default('127.0.0.1'),
      port: port.default(8443),
      /** The operator's token file (created by `recrypt init`). */
      tokenFile: z.string().default('admin.token'),
      /** Per client IP, on the unauthenticated public routes (docs/configuration.md). */
      rateLimit: z
        .strictObject({
          perMinute: z.number().int().positive().default(60),
          burst: z.number().int().positive().default(30),
        })
        .prefault({}),
      proxyProtocol: proxyProtocol.optional(),
    })
    .prefault({}),
  /** The operator listener: admin-token routes, /metrics, /readyz; never exposed. */
  operator: z
    .strictObject({
      host: host.default('127.0.0.1'),
      port: port.default(8444),
      /** When set, /metrics needs `Authorization: Bearer` with this file's token. */
      metricsTokenFile: z.string().optional(),
      proxyProtocol: proxyProtocol.optional(),
    })
    .prefault({}),
  keyStore: keyStore.default({ kind: 'sqlite', path: 'keystore.sqlite' }),
  mailStore: mailStore.default({
    kind: 'embedded',
    host: '127.0.0.1',
    imapPort: 10143,
    lmtpSocket: 'store-lmtp.sock',
  }),
  outbound: outbound.prefault({}),
  submission: submission.optional(),
});

export const configSchema = configObject.refine(
  (config) => config.tls === undefined || config.acme === undefined,
  {
    message: 'set tls (certificate files) or acme (certificates from a CA), not both',
    path: ['acme'],
  },
);

export type GatewayConfig = z.infer<typeof configSchema>;
export type OutboundConfig = GatewayConfig['outbound'];
export type SubmissionConfig = NonNullable<GatewayConfig['submission']>;
