/**
 * node:http / node:https adapter for routes.ts. `createProfileHandler` returns a handler
 * the admin server calls first: it answers and resolves true for paths under
 * /.well-known/mail-profile/, and resolves false (touching nothing) for any other path.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { handleProfileRequest, type ProfileHttpResponse, type ProfileSource } from './routes.js';

export type ProfileHandler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

function send(res: ServerResponse, response: ProfileHttpResponse, method: string): void {
  res.writeHead(response.status, response.headers);
  // HEAD gets the GET headers (Content-Length included) without the body.
  res.end(method === 'HEAD' || response.status === 304 ? undefined : Buffer.from(response.body));
}

export function createProfileHandler(source: ProfileSource): ProfileHandler {
  return async (req, res) => {
    const method = req.method ?? 'GET';
    const ifNoneMatch = req.headers['if-none-match'];
    let response: ProfileHttpResponse | null;
    try {
      response = await handleProfileRequest({ method, url: req.url ?? '/', ifNoneMatch }, source);
    } catch {
      response = {
        status: 500,
        headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' },
        body: new Uint8Array(Buffer.from('internal error\n')),
      };
    }
    if (response === null) return false;
    send(res, response, method);
    return true;
  };
}

/** A whole request listener serving only the profile endpoints; 404 for everything else. */
export function profileRequestListener(source: ProfileSource): RequestListener {
  const handler = createProfileHandler(source);
  return (req, res) => {
    void handler(req, res).then((handled) => {
      if (!handled) {
        res.writeHead(404, {
          'content-type': 'text/plain; charset=utf-8',
          'cache-control': 'no-store',
        });
        res.end('not found\n');
      }
    });
  };
}
