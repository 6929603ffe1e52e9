/** The configuration of the sending side: the outbound queue and submission (docs/configuration.md). */
import { z } from 'zod';
import { duration, host, hostAndPort, port } from './schema-values.js';

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
export const outbound = z.strictObject({
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

/**
 * Submission (RFC 6409, src/submission, docs/sending.md): the users' own mail clients send
 * here with their device password; mail is encrypted to every recipient whose key is found.
 * Off unless the section is present (`submission: {}` takes the defaults).
 */
export const submission = z.strictObject({
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
