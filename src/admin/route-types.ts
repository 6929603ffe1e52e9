/** The shapes the admin route modules share (api.ts puts their handlers in one table). */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { User } from '../keystore/index.js';

/** The enrolled user who signed an owner request. */
export type Owner = User & { owner: NonNullable<User['owner']> };

/** A route: its context, the request, the response, the path's parameters and the body. */
export type Handler<C> = (
  ctx: C,
  req: IncomingMessage,
  res: ServerResponse,
  params: string[],
  body: Buffer,
) => Promise<void>;
