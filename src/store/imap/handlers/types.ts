import type { Command, CommandName } from '../commands/types.js';
import type { Session } from '../session.js';

export type Cmd<N extends CommandName> = Command & { name: N };

/** What goes into the tagged OK (default: `OK <NAME> completed`). */
export interface OkReply {
  code?: string;
  text?: string;
}

export type Handler<N extends CommandName> = (s: Session, cmd: Cmd<N>) => Promise<OkReply | void>;
