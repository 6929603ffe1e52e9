/**
 * A small client for Gecko's Marionette remote protocol, enough to drive Thunderbird from a
 * test: frames are `<byte length>:<JSON>`, the server greets first, commands are
 * `[0, id, name, params]` and answers `[1, id, error, result]`. In the chrome context (with
 * Thunderbird started with `--marionette --remote-allow-system-access`) `execute` runs
 * privileged JavaScript in the main window; a returned promise is awaited by Marionette.
 */
import { connect, type Socket } from 'node:net';

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
}

export class Marionette {
  private buffer = Buffer.alloc(0);
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private greeting?: (value: unknown) => void;
  private closedError?: Error;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    const fail = (error: Error) => {
      this.closedError = error;
      for (const waiter of this.pending.values()) waiter.reject(error);
      this.pending.clear();
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('marionette connection closed')));
  }

  /** Connects, reads the greeting and opens a WebDriver session in the chrome context. */
  static async open(port: number): Promise<Marionette> {
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const client = new Marionette(socket);
    const hello = (await new Promise<unknown>((resolve) => (client.greeting = resolve))) as {
      marionetteProtocol?: number;
    };
    if (hello.marionetteProtocol !== 3) {
      socket.destroy();
      throw new Error(`unexpected marionette greeting ${JSON.stringify(hello)}`);
    }
    await client.command('WebDriver:NewSession', { capabilities: {} });
    await client.command('Marionette:SetContext', { value: 'chrome' });
    // Scripts wait for IMAP fetches and message display; a test's own timeout bounds them.
    await client.command('WebDriver:SetTimeouts', { script: 120_000 });
    return client;
  }

  command(name: string, params: Record<string, unknown> = {}): Promise<unknown> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    const json = Buffer.from(JSON.stringify([0, id, name, params]), 'utf8');
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.write(Buffer.concat([Buffer.from(`${json.length}:`), json]));
    });
  }

  /**
   * Runs `script` (the body of an async function; `arguments` holds `args`) in the chrome
   * window and returns what it resolves to.
   */
  async execute<T>(script: string, args: unknown[] = []): Promise<T> {
    const result = (await this.command('WebDriver:ExecuteScript', {
      script: `return (async function () {\n${script}\n}).apply(this, arguments);`,
      args,
      newSandbox: true,
    })) as { value: T };
    return result.value;
  }

  close(): void {
    this.socket.destroy();
  }

  private receive(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (;;) {
      const colon = this.buffer.indexOf(0x3a);
      if (colon < 0) return;
      const length = Number(this.buffer.subarray(0, colon).toString('ascii'));
      if (this.buffer.length < colon + 1 + length) return;
      const frame = JSON.parse(
        this.buffer.subarray(colon + 1, colon + 1 + length).toString('utf8'),
      ) as unknown;
      this.buffer = this.buffer.subarray(colon + 1 + length);
      this.dispatch(frame);
    }
  }

  private dispatch(frame: unknown): void {
    if (!Array.isArray(frame)) {
      this.greeting?.(frame);
      this.greeting = undefined;
      return;
    }
    const [, id, error, result] = frame as [number, number, unknown, unknown];
    const waiter = this.pending.get(id);
    if (!waiter) return;
    this.pending.delete(id);
    if (error) {
      const { error: kind, message, stacktrace } = error as Record<string, string>;
      waiter.reject(new Error(`marionette ${kind}: ${message}\n${stacktrace ?? ''}`));
    } else {
      waiter.resolve(result);
    }
  }
}
