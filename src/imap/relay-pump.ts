/**
 * The upstream → client half of a session's relay: each read of the upstream socket goes
 * through the response rewriter and straight to the client socket; backpressure pauses
 * the upstream socket (a slow client must not make the proxy hold the store's output:
 * the client socket's own buffer is the buffer, plus at most the read in hand).
 *
 * Not a Node stream on purpose: a Transform between two sockets (`pipe`) costs a queue,
 * events and callbacks per read on each side, about as much CPU per byte as the kernel's
 * copies (a bare `pipe` relay against one fed by `onread`, side by side); on a machine
 * whose cores the store and the client also need, that CPU is the relay's wall time.
 * The upstream socket hands its reads here without a stream (upstream.ts, SocketInput).
 *
 * What the rewriter emits while it works through one read (a response line, the
 * literal's pieces around each patch, the closing parenthesis: several per message) is
 * written as one buffer: each piece would otherwise be its own write to the client
 * socket, a system call per piece. Only the synchronous part of a read is joined; what
 * comes after a side fetch was waited for goes out as it is made, and reads that arrive
 * meanwhile wait their turn (the upstream socket is paused then too).
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { joinViews } from './join-views.js';
import { ResponseRewriter, type RewriterContext } from './response-rewriter.js';

export interface RelayPumpEvents {
  /** The output is complete: upstream ended, or the BYE of `closeAtBoundary` was written. */
  end: [];
  /** The rewriter failed; nothing more is written. */
  error: [Error];
}

export class RelayPump extends EventEmitter<RelayPumpEvents> {
  readonly rewriter: ResponseRewriter;
  /** Output of the read being rewritten, while it is rewritten synchronously. */
  private batch: Uint8Array[] | null = null;
  private endAfterBatch = false;
  /** Reads that came while the rewriter waited for a side fetch, in order. */
  private readonly queued: Buffer[] = [];
  private rewriting = false;
  private upstreamEnded = false;
  /** Reasons the upstream socket is paused (the client's backpressure, a side fetch). */
  private holds = 0;
  private waitingForDrain = false;
  private detached = false;
  private finished = false;

  constructor(
    context: RewriterContext,
    private readonly upstream: Socket,
    private readonly client: Socket,
    private readonly options: {
      /** Counts the bytes written to the client. */
      onOutput?: (bytes: number) => void;
      /** A read nothing refers to any more: its buffer may be read into again. */
      recycle?: (chunk: Buffer) => void;
    } = {},
  ) {
    super();
    this.rewriter = new ResponseRewriter(context, (bytes) => {
      if (this.batch !== null) this.batch.push(bytes);
      else this.write(bytes);
    });
  }

  /** True once the output is complete ('end' was emitted). */
  get ended(): boolean {
    return this.finished;
  }

  /** One read of the upstream socket. */
  readonly feed = (chunk: Buffer): void => {
    if (this.detached || this.finished) return;
    if (this.rewriting) {
      this.queued.push(chunk);
      return;
    }
    this.rewrite(chunk);
  };

  /** The upstream socket ended (or closed): what the rewriter holds goes out, then 'end'. */
  upstreamEnd(): void {
    if (this.upstreamEnded) return;
    this.upstreamEnded = true;
    if (!this.rewriting) this.finishInput();
  }

  /**
   * Writes `bytes` at the next response boundary, then ends the output: 'end' is emitted
   * once everything before it and it have been written to the client socket.
   */
  closeAtBoundary(bytes: Uint8Array): void {
    this.rewriter.closeAtBoundary(bytes, () => {
      if (this.batch !== null) this.endAfterBatch = true;
      else this.finish();
    });
  }

  /** Stops the relay at once: nothing more is read from upstream or written to the client. */
  detach(): void {
    this.detached = true;
    this.queued.length = 0;
    this.upstream.pause();
  }

  private rewrite(chunk: Buffer): void {
    this.batch = [];
    let pending: Promise<void> | undefined;
    try {
      pending = this.rewriter.write(chunk);
    } catch (error) {
      this.batch = null;
      this.fail(error as Error);
      return;
    }
    this.flushBatch();
    if (pending === undefined) {
      // Every byte written went to the kernel at once (none waits in the socket's queue)
      // and the rewriter holds no view of the read: nothing refers to it any more. A TLS
      // socket's writes always complete later (after encryption), so with a TLS client
      // each long read keeps its own buffer; there the encryption's copy is the larger cost.
      if (this.client.writableLength === 0 && !this.rewriter.holdsInput())
        this.options.recycle?.(chunk);
      return;
    }
    this.rewriting = true;
    this.hold();
    pending.then(
      () => {
        this.rewriting = false;
        this.release();
        this.drainQueue();
      },
      (error: unknown) => this.fail(error as Error),
    );
  }

  /** Rewrites the reads that waited, until one waits again or none is left. */
  private drainQueue(): void {
    while (this.queued.length > 0 && !this.rewriting && !this.detached && !this.finished) {
      this.rewrite(this.queued.shift()!);
    }
    if (!this.rewriting && this.upstreamEnded) this.finishInput();
  }

  private finishInput(): void {
    if (this.detached || this.finished) return;
    this.batch = [];
    this.rewriter.end();
    this.flushBatch();
    this.finish();
  }

  private flushBatch(): void {
    const pieces = this.batch ?? [];
    this.batch = null;
    if (pieces.length > 0) this.write(joinViews(pieces));
    if (this.endAfterBatch) {
      this.endAfterBatch = false;
      this.finish();
    }
  }

  private write(bytes: Uint8Array): void {
    if (this.detached || this.finished || this.client.destroyed) return;
    this.options.onOutput?.(bytes.length);
    if (this.client.write(bytes) || this.waitingForDrain) return;
    this.waitingForDrain = true;
    this.hold();
    this.client.once('drain', () => {
      this.waitingForDrain = false;
      this.release();
    });
  }

  private hold(): void {
    if (this.holds++ === 0) this.upstream.pause();
  }

  private release(): void {
    if (--this.holds === 0 && !this.detached && !this.finished) this.upstream.resume();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.queued.length = 0;
    this.emit('end');
  }

  private fail(error: Error): void {
    if (this.finished) return;
    this.finished = true;
    this.queued.length = 0;
    this.upstream.pause();
    this.emit('error', error);
  }
}
