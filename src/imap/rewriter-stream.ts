/** The response rewriter as a Node Transform stream, so `pipe` carries backpressure. */
import { Transform, type TransformCallback } from 'node:stream';
import { ResponseRewriter, type RewriterContext } from './response-rewriter.js';

export class RewriterStream extends Transform {
  readonly rewriter: ResponseRewriter;

  constructor(context: RewriterContext) {
    // A small high-water mark: the socket's own buffer is the buffer (a slow
    // client must not make the proxy hold the upstream's output).
    super({ highWaterMark: 64 * 1024 });
    this.rewriter = new ResponseRewriter(context, (bytes) => this.push(bytes));
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.rewriter.write(chunk).then(() => callback(), callback);
  }

  /**
   * Emits `bytes` at the next response boundary, then ends the readable side: 'end'
   * fires once everything before it has been consumed (written to the client socket).
   */
  closeAtBoundary(bytes: Uint8Array): void {
    this.rewriter.closeAtBoundary(bytes, () => this.push(null));
  }

  override _flush(callback: TransformCallback): void {
    this.rewriter.end();
    callback();
  }
}
