/**
 * For the outbound queue's tests: a real SMTP server on loopback (smtp-server, STARTTLS
 * with its built-in self-signed certificate) playing the remote MX, whose answers each
 * test scripts; a queue opened on a temporary directory with its logs captured; and a
 * poll-until helper for outcomes (generous timeouts, no timing assertions).
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';
import { configSchema, type OutboundConfig } from '../../src/config/schema.js';
import {
  type OpenOutboundQueueOptions,
  type OutboundMetrics,
  type OutboundQueueHandle,
  createOutboundMetrics,
  openOutboundQueue,
} from '../../src/outbound/index.js';

export interface ReceivedMail {
  mailFrom: string;
  to: string[];
  bytes: Buffer;
  /** The session ran STARTTLS. */
  secure: boolean;
  /** The name the client asked for in the TLS handshake (SNI); recorded by outbound-named-mx.ts. */
  servername?: string;
  /** The name the client gave in EHLO. */
  ehlo: string;
}

/** undefined accepts; otherwise the SMTP reply to give, e.g. [550, '5.1.1 No such user']. */
export type RcptAnswer = undefined | [number, string];

export interface RemoteMxOptions {
  port?: number;
  onRcpt?: (to: string, session: SMTPServerSession) => RcptAnswer;
  /** Called at the end of DATA; the 250 is sent when it resolves. */
  beforeAccept?: (mail: ReceivedMail) => Promise<void>;
  /** Offer AUTH (a smarthost); every attempt is recorded in `logins` and accepted. */
  offerAuth?: boolean;
}

export class RemoteMx {
  private constructor(
    private readonly server: SMTPServer,
    readonly port: number,
    readonly received: ReceivedMail[],
    readonly logins: Array<{ user: string; secure: boolean }>,
  ) {}

  static async start(options: RemoteMxOptions = {}): Promise<RemoteMx> {
    const received: ReceivedMail[] = [];
    const logins: Array<{ user: string; secure: boolean }> = [];
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: options.offerAuth === true ? [] : ['AUTH'],
      logger: false,
      onAuth(auth, session, callback) {
        logins.push({ user: auth.username ?? '', secure: session.secure });
        callback(null, { user: auth.username });
      },
      onRcptTo(address, session, callback) {
        const answer = options.onRcpt?.(address.address, session);
        if (answer === undefined) return callback();
        const error = new Error(answer[1]) as Error & { responseCode: number };
        error.responseCode = answer[0];
        callback(error);
      },
      onData(stream, session, callback) {
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => {
          const mail: ReceivedMail = {
            mailFrom: session.envelope.mailFrom === false ? '' : session.envelope.mailFrom.address,
            to: session.envelope.rcptTo.map((rcpt) => rcpt.address),
            bytes: Buffer.concat(chunks),
            secure: session.secure,
            ehlo: session.hostNameAppearsAs,
          };
          void (options.beforeAccept?.(mail) ?? Promise.resolve()).then(() => {
            received.push(mail);
            callback();
          });
        });
      },
    });
    const port = await new Promise<number>((resolve, reject) => {
      server.server.once('error', reject);
      server.listen(options.port ?? 0, '127.0.0.1', () => {
        const address = server.server.address();
        resolve(typeof address === 'object' && address !== null ? address.port : 0);
      });
    });
    return new RemoteMx(server, port, received, logins);
  }

  /** Resolves with everything received once `count` messages have arrived in total. */
  async waitFor(count: number, timeoutMs = 60_000): Promise<ReceivedMail[]> {
    await waitUntil(() => this.received.length >= count, `${count} messages`, timeoutMs);
    return this.received;
  }

  to(address: string): ReceivedMail[] {
    return this.received.filter((mail) => mail.to.includes(address));
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The outbound section as the config file would give it (defaults filled in). */
export function outboundConfig(section: Record<string, unknown>): OutboundConfig {
  return configSchema.parse({ outbound: section }).outbound;
}

export interface TestQueue {
  queue: OutboundQueueHandle;
  metrics: OutboundMetrics;
  /** Every log line the queue wrote (JSON text). */
  logs: string[];
  count(outcome: string): Promise<number>;
}

export async function openTestQueue(
  dir: string,
  section: Record<string, unknown>,
  extra: Partial<OpenOutboundQueueOptions> = {},
): Promise<TestQueue> {
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logs.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  const metrics = createOutboundMetrics(new Registry());
  const queue = await openOutboundQueue({
    dir,
    config: outboundConfig({ heloName: 'gw.test', ...section }),
    logger: pino({ level: 'debug' }, sink),
    metrics,
    ...extra,
  });
  const count = async (outcome: string) =>
    (await metrics.deliveries.get()).values.find((value) => value.labels.outcome === outcome)
      ?.value ?? 0;
  return { queue, metrics, logs, count };
}

/** A small message with CRLF line ends and a marker in its body (that must never leak). */
export function testMessage(subject: string, bodyMarker: string): Buffer {
  return Buffer.from(
    [
      'From: poster@home.test',
      'To: member@remote.test',
      `Subject: ${subject}`,
      'Message-ID: <' + subject.replace(/\W/g, '') + '@home.test>',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      '',
      `body ${bodyMarker}`,
      '.a line that starts with a dot',
      '',
    ].join('\r\n'),
  );
}
