/**
 * A long-lived Python imaplib session against the bridge, driven line by line: the test
 * says when to send NOOP or STORE and reads what imaplib saw (an ALERT, a NO with its
 * text, a BYE and the end of the connection). imaplib is a real client, and it reports
 * untagged BYE and [ALERT] the way its users read them.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';

const SCRIPT = `
import imaplib, json, sys
def out(**event):
    print(json.dumps(event), flush=True)
def alerts():
    # imaplib keeps a response code's bracket only; the ALERT's text is the rest of the OK line.
    m.untagged_responses.pop('ALERT', None)
    return [d.decode() for d in m.untagged_responses.pop('OK', []) if d and d.startswith(b'[ALERT] ')]
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]), timeout=60)
m.login(sys.argv[2], sys.argv[3])
typ, data = m.select(sys.argv[4])
out(event='selected', typ=typ, exists=int(data[0]), alert=alerts())
for line in sys.stdin:
    command = line.strip()
    try:
        if command == 'noop':
            typ, data = m.noop()
        else:
            typ, data = m.store('1', '+FLAGS', '(\\\\Flagged)')
        # A NO comes back as its type and text, not as an exception (imaplib's STORE).
        text = ' '.join(d.decode() for d in data if isinstance(d, bytes))
        out(event='ok' if typ == 'OK' else 'no', typ=typ, text=text, alert=alerts())
    except imaplib.IMAP4.abort as error:
        bye = m.untagged_responses.get('BYE') or [str(error).encode()]
        out(event='bye', text=bye[-1].decode())
        break
    except imaplib.IMAP4.error as error:
        out(event='no', text=str(error))
`;

export interface ImaplibEvent {
  event: 'selected' | 'ok' | 'no' | 'bye';
  typ?: string;
  exists?: number;
  alert?: string[];
  text?: string;
}

export class ImaplibSession {
  private readonly events: ImaplibEvent[] = [];
  private waiting: ((event: ImaplibEvent) => void) | null = null;
  private stderr = '';
  /** What imaplib said last (a `bye` ends the script): named when it is gone. */
  private last: ImaplibEvent | null = null;
  /**
   * Settles once the script's output is complete. A command sent after it ended fails at
   * once: a listener for 'exit' added later never fires, and a BYE the test did not expect
   * read as 60 s of silence from the bridge.
   */
  private readonly ended: Promise<void>;

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    child.stderr.on('data', (chunk: Buffer) => (this.stderr += chunk.toString('utf8')));
    this.ended = new Promise((resolve) => child.once('close', () => resolve()));
    createInterface({ input: child.stdout }).on('line', (line) => {
      const event = JSON.parse(line) as ImaplibEvent;
      this.last = event;
      const waiting = this.waiting;
      this.waiting = null;
      if (waiting !== null) waiting(event);
      else this.events.push(event);
    });
  }

  /** Logs in on the bridge's plain-loopback port and selects `mailbox`. */
  static async open(
    port: number,
    user: string,
    password: string,
    mailbox: string,
  ): Promise<{ session: ImaplibSession; selected: ImaplibEvent }> {
    const child = spawn('python3', ['-c', SCRIPT, String(port), user, password, mailbox]);
    const session = new ImaplibSession(child);
    return { session, selected: await session.next() };
  }

  /** Sends `noop` or `store` (STORE 1 +FLAGS \Flagged) and returns what imaplib saw. */
  async send(command: 'noop' | 'store'): Promise<ImaplibEvent> {
    if (this.child.exitCode === null && this.child.signalCode === null)
      this.child.stdin.write(`${command}\n`);
    return this.next(command);
  }

  private next(what = 'the login and SELECT'): Promise<ImaplibEvent> {
    const queued = this.events.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      let done = false;
      const timer = setTimeout(() => {
        done = true;
        this.waiting = null;
        reject(new Error(`imaplib said nothing in 60 s to ${what}: ${this.stderr}`));
      }, 60_000);
      void this.ended.then(() => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.waiting = null;
        const last = this.last === null ? 'nothing' : JSON.stringify(this.last);
        reject(new Error(`imaplib had ended at ${what} (it said last: ${last}): ${this.stderr}`));
      });
      this.waiting = (event) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(event);
      };
    });
  }

  close(): void {
    this.child.stdin.end();
    this.child.kill();
  }
}
