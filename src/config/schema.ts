/**
 * The gateway's one configuration file, validated with zod. Every option has a default
 * that runs the gateway on one machine with nothing else installed (SQLite key store,
 * embedded mail store, self-signed TLS in the data directory, high ports for a
 * non-root start). Production settings are one change each. docs/configuration.md
 * documents every option; keep the two in step.
 */
import { z } from 'zod';
import { trustedPeers } from '../net/proxy-listener.js';

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

/** A time span: milliseconds, or a number with a unit (`500ms`, `30s`, `5m`, `1h`, `2d`). */
const DURATION_UNITS_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const duration = z
  .union([
    z.number().int().nonnegative(),
    z.string().regex(/^\d+(ms|s|m|h|d)$/, 'a duration: milliseconds, or e.g. 30s, 5m, 1h, 2d'),
  ])
  .transform((value) => {
    if (typeof value === 'number') return value;
    const [, amount, unit] = /^(\d+)(ms|s|m|h|d)$/.exec(value)!;
    return Number(amount) * DURATION_UNITS_MS[unit as keyof typeof DURATION_UNITS_MS];
  });

/** "host:port" or "[v6]:port", a fixed next hop for one domain. */
const hostAndPort = z
  .string()
  .regex(/^(\[[0-9A-Fa-f:.]+\]|[^\s:[\]]+):\d{1,5}$/, 'host:port, or [IPv6]:port');

const outboundRelay = z
  .strictObject({
    host,
    port: port.default(587),
    /** Implicit TLS (465); otherwise STARTTLS, required whenever credentials are sent. */
    secure: z.boolean().default(false),
    user: z.string().min(1).optional(),
    /** First line is the password; used as given (absolute paths are best). */
    passwordFile: z.string().min(1).optional(),
  })
  .refine((relay) => (relay.user === undefined) === (relay.passwordFile === undefined), {
    message: 'set both user and passwordFile, or neither',
  });

/** The outbound queue (src/outbound, docs/outbound.md): remote list members, notices, bounces. */
const outbound = z.strictObject({
  /** Our name in EHLO and in bounces' Reporting-MTA; default the host name. */
  heloName: z.string().min(1).optional(),
  concurrency: z.number().int().min(1).max(100).default(4),
  /** Every message through this smarthost (after `routes`) instead of the recipients' MX. */
  relay: outboundRelay.optional(),
  /** Per-domain next hop that wins over relay and DNS, e.g. the gateway's own domains → its MX. */
  routes: z.record(z.string().min(1), hostAndPort).default({}),
  /**
   * DKIM keys by the envelope sender's domain: copies a list sends from
   * <list>-bounces@<domain> are signed with that domain's key.
   */
  dkim: z
    .record(
      z.string().min(1),
      z.strictObject({
        selector: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'a DNS label, e.g. s2026'),
        /** PEM private key (RSA or Ed25519); used as given (absolute paths are best). */
        privateKeyFile: z.string().min(1),
      }),
    )
    .default({}),
  /** DNS server (`host:port`) for MX, address, MTA-STS and DANE lookups; default the system's. */
  resolver: hostAndPort.optional(),
  /** MTA-STS (RFC 8461) for the recipients' MX hosts (src/outbound/mta-sts.ts). */
  mtaSts: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Per-domain `host:port` to fetch the policy from; its certificate is still checked for mta-sts.<domain>. */
      origins: z.record(z.string().min(1), hostAndPort).default({}),
      /** Extra trust anchors (PEM file) for policy servers and MX hosts, besides the system's. */
      caFile: z.string().min(1).optional(),
      timeout: duration.prefault('10s'),
    })
    .prefault({}),
  /**
   * DANE (RFC 7672) for the recipients' MX hosts: needs a validating resolver, `resolver`
   * above or else the system's, which must then be on loopback.
   */
  dane: z.strictObject({ enabled: z.boolean().default(false) }).prefault({}),
  /** Send only over STARTTLS with a verified certificate (else opportunistic). */
  requireTls: z.boolean().default(false),
  /** Verify the certificate whenever TLS is used. */
  verifyTls: z.boolean().default(false),
  connectTimeout: duration.prefault('30s'),
  greetingTimeout: duration.prefault('30s'),
  socketTimeout: duration.prefault('5m'),
  retryInitial: duration.prefault('1m'),
  retryMax: duration.prefault('1h'),
  bounceAfter: duration.prefault('5d'),
  /**
   * With a Redis key store, how long a process's claim on a job lasts (renewed while it
   * sends): when the process dies, another one sends the job after this (docs/outbound.md).
   */
  lease: duration.prefault('1m'),
});

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
 * Submission (RFC 6409, src/submission, docs/sending.md): the users' own mail clients send
 * here with their device password; mail is encrypted to every recipient whose key is found.
 * Off unless the section is present (`submission: {}` takes the defaults).
 */
const submission = z.strictObject({
  host: host.default('0.0.0.0'),
  /** STARTTLS (587 in production). */
  port: port.default(2587),
  /** Implicit TLS (465 in production). */
  tlsPort: port.default(2465),
  maxMessageBytes: z
    .number()
    .int()
    .positive()
    .default(25 * 1024 * 1024),
  /** Recipients per message: each adds two recipient infos, and the proxy reads at most ~200. */
  maxRecipients: z.number().int().positive().max(99).default(50),
  /** Messages per user (token bucket over all of the user's devices). */
  rateLimit: z
    .strictObject({
      perMinute: z.number().int().positive().default(10),
      burst: z.number().int().positive().default(30),
    })
    .prefault({}),
  /** A recipient without a key: `send` it as is (TLS when offered) or `refuse` it (5.7.1, not sent). */
  withoutKey: z.enum(['send', 'refuse']).default('send'),
  /** Store an encrypted copy in the sender's \Sent mailbox (clients then must not file their own). */
  sentCopy: z.boolean().default(true),
  /** Published profiles (https://<domain>/.well-known/mail-profile/<address>). */
  discovery: z
    .strictObject({
      /** Per-domain origin that wins over https://<domain>, e.g. { example.net: "https://127.0.0.1:8443" }. */
      origins: z.record(z.string().min(1), z.url()).default({}),
      /** Extra trust anchors (PEM file) for those origins, besides the system's. */
      caFile: z.string().min(1).optional(),
      /** How long a fetched profile (or a miss) is used before it is fetched again. */
      cacheTtl: duration.prefault('1h'),
      timeout: duration.prefault('10s'),
    })
    .prefault({}),
  /**
   * SMIMEA records (RFC 8162) as a key source, used only when DNSSEC-validated
   * (src/submission/smimea-source.ts, docs/sending.md "SMIMEA").
   */
  smimea: z
    .strictObject({
      enabled: z.boolean().default(false),
      /** A validating resolver whose AD bit is believed; default the system's, if on loopback. */
      resolver: hostAndPort.optional(),
      timeout: duration.prefault('5s'),
      /** Longest an answer is used (a record's shorter TTL wins). */
      cacheTtl: duration.prefault('1h'),
    })
    .prefault({}),
  /**
   * Signer certificates the MX harvests from S/MIME-signed mail for submission to encrypt
   * to (src/keydir, docs/sending.md "Harvested certificates").
   */
  harvest: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Certificates kept per address (the most recently seen). */
      maxPerAddress: z.number().int().min(1).max(20).default(3),
      /** Larger signed messages are not looked at. */
      maxMessageBytes: z
        .number()
        .int()
        .positive()
        .default(4 * 1024 * 1024),
      /** Larger signatures (CMS, decoded) are not looked at. */
      maxSignatureBytes: z
        .number()
        .int()
        .positive()
        .default(64 * 1024),
      /** A verification still running after this is abandoned. */
      timeout: duration.prefault('5s'),
      /** Signed messages waiting to be looked at; more are skipped. */
      maxPending: z.number().int().positive().default(16),
      /** Only when the MX's DMARC check passed for the From domain (a stranger cannot plant a key). */
      requireDmarcPass: z.boolean().default(true),
    })
    .prefault({}),
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
