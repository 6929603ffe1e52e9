/**
 * The response rewriter as a Node Transform stream, so `pipe` carries backpressure.
 *
 * What the rewriter emits while it works through one upstream chunk (a response line, the
 * literal's pieces around each patch, the closing parenthesis: several per message) is
 * pushed as one buffer: each push would otherwise be its own write to the client socket,
 * a system call per piece, which was the largest item of a repeat FETCH of small messages
 * in the proxy's profile (bench/proxy.bench.ts). Only the synchronous part of a chunk is
 * joined; what comes after a side fetch was waited for goes out as it is made.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { joinViews } from './join-views.js';
import { ResponseRewriter, type RewriterContext } from './response-rewriter.js';

export class RewriterStream extends Transform {
  readonly rewriter: ResponseRewriter;
  /** Output of the chunk being rewritten, while it is rewritten synchronously. */
  private batch: Uint8Array[] | null = null;
  private endAfterBatch = false;

  constructor(context: RewriterContext) {
    // A small high-water mark: the socket's own buffer is the buffer (a slow
    // client must not make the proxy hold the upstream's output).
    super({ highWaterMark: 64 * 1024 });
    this.rewriter = new ResponseRewriter(context, (bytes) => {
      if (this.batch !== null) this.batch.push(bytes);
      else this.push(bytes);
    });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.batch = [];
    // Runs synchronously up to its first wait (a side fetch), if any.
    const written = this.rewriter.write(chunk);
    this.flushBatch();
    written.then(() => callback(), callback);
  }

  /**
   * Emits `bytes` at the next response boundary, then ends the readable side: 'end'
   * fires once everything before it has been consumed (written to the client socket).
   */
  closeAtBoundary(bytes: Uint8Array): void {
    this.rewriter.closeAtBoundary(bytes, () => {
      if (this.batch !== null) this.endAfterBatch = true;
      else this.push(null);
    });
  }

  override _flush(callback: TransformCallback): void {
    this.rewriter.end();
    callback();
  }

  private flushBatch(): void {
    const pieces = this.batch ?? [];
    this.batch = null;
    if (pieces.length > 0) this.push(joinViews(pieces));
    if (this.endAfterBatch) {
      this.endAfterBatch = false;
      this.push(null);
    }
  }
}
