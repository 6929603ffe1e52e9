import type { SequenceSet } from './sequence.js';

/** BODY[section]: `path` is the part number (empty = whole message). */
export interface Section {
  path: number[];
  specifier: '' | 'HEADER' | 'HEADER.FIELDS' | 'HEADER.FIELDS.NOT' | 'TEXT' | 'MIME';
  fields: string[];
}

export type FetchItem =
  | {
      type:
        'FLAGS' | 'UID' | 'INTERNALDATE' | 'RFC822.SIZE' | 'ENVELOPE' | 'BODYSTRUCTURE' | 'BODY';
    }
  | { type: 'RFC822' | 'RFC822.HEADER' | 'RFC822.TEXT' }
  | { type: 'MODSEQ' }
  | {
      type: 'BODY[]';
      peek: boolean;
      section: Section;
      partial: { start: number; length: number } | null;
    };

export type SearchKey =
  | {
      type:
        'all' | 'answered' | 'deleted' | 'draft' | 'flagged' | 'new' | 'old' | 'recent' | 'seen';
    }
  | { type: 'unanswered' | 'undeleted' | 'undraft' | 'unflagged' | 'unseen' }
  | { type: 'keyword' | 'unkeyword'; flag: string }
  | { type: 'before' | 'on' | 'since' | 'sentbefore' | 'senton' | 'sentsince'; date: Date }
  | { type: 'header'; field: string; value: string }
  | { type: 'body' | 'text'; value: string }
  | { type: 'larger' | 'smaller'; size: number }
  | { type: 'modseq'; modseq: number }
  | { type: 'seqset' | 'uid'; set: SequenceSet }
  | { type: 'not'; key: SearchKey }
  | { type: 'or'; a: SearchKey; b: SearchKey }
  | { type: 'and'; keys: SearchKey[] };

export type StatusItem =
  'MESSAGES' | 'RECENT' | 'UIDNEXT' | 'UIDVALIDITY' | 'UNSEEN' | 'HIGHESTMODSEQ';

/** SELECT / EXAMINE (QRESYNC (…)) (RFC 7162 §3.2.5). */
export interface QresyncParams {
  uidValidity: number;
  modseq: number;
  knownUids: SequenceSet | null;
  /** Sequence numbers and the UIDs the client has for them. */
  seqMatch: { seqs: SequenceSet; uids: SequenceSet } | null;
}

/** ESEARCH result options (RFC 4731); an empty RETURN () means ALL. */
export type SearchReturn = 'MIN' | 'MAX' | 'ALL' | 'COUNT';

/** sort-key (RFC 5256 §3) with its REVERSE prefix. */
export interface SortCriterion {
  key: 'ARRIVAL' | 'CC' | 'DATE' | 'FROM' | 'SIZE' | 'SUBJECT' | 'TO';
  reverse: boolean;
}

/** LIST-EXTENDED (RFC 5258) selection and return options, LIST-STATUS (RFC 5819). */
export interface ListOptions {
  patterns: string[];
  selectSubscribed: boolean;
  selectSpecialUse: boolean;
  recursiveMatch: boolean;
  returnSubscribed: boolean;
  returnStatus: StatusItem[] | null;
}

/** One message of an APPEND (RFC 3502 MULTIAPPEND sends several). */
export interface AppendMessage {
  flags: string[];
  date: Date | null;
  message: Buffer;
}

export type CommandBody =
  | {
      name:
        | 'CAPABILITY'
        | 'NOOP'
        | 'LOGOUT'
        | 'STARTTLS'
        | 'CHECK'
        | 'CLOSE'
        | 'UNSELECT'
        | 'IDLE'
        | 'NAMESPACE';
    }
  | { name: 'EXPUNGE'; set: SequenceSet | null }
  | { name: 'LOGIN'; user: string; password: string }
  | { name: 'AUTHENTICATE'; mechanism: string; initial: string | null }
  | { name: 'ENABLE'; capabilities: string[] }
  | { name: 'ID'; params: Array<[string, string | null]> | null }
  | {
      name: 'SELECT' | 'EXAMINE';
      mailbox: string;
      /** (CONDSTORE) select-param (RFC 7162 §3.1.8). */
      condstore?: boolean;
      qresync?: QresyncParams;
    }
  | { name: 'CREATE' | 'DELETE' | 'SUBSCRIBE' | 'UNSUBSCRIBE'; mailbox: string }
  | { name: 'RENAME'; from: string; to: string }
  | { name: 'LIST' | 'LSUB'; reference: string; pattern: string; extended?: ListOptions }
  | { name: 'STATUS'; mailbox: string; items: StatusItem[] }
  | {
      name: 'APPEND';
      mailbox: string;
      flags: string[];
      date: Date | null;
      message: Buffer;
      /** Messages after the first (MULTIAPPEND); all or none are stored. */
      more: AppendMessage[];
    }
  | { name: 'SEARCH'; charset: string | null; key: SearchKey; returns?: SearchReturn[] }
  | { name: 'SORT'; criteria: SortCriterion[]; charset: string; key: SearchKey }
  | { name: 'THREAD'; algorithm: 'ORDEREDSUBJECT' | 'REFERENCES'; charset: string; key: SearchKey }
  | {
      name: 'FETCH';
      set: SequenceSet;
      items: FetchItem[];
      /** (CHANGEDSINCE n) (RFC 7162 §3.1.4), with VANISHED (§3.2.6). */
      changedSince?: number;
      vanished?: boolean;
    }
  | {
      name: 'STORE';
      set: SequenceSet;
      /** (UNCHANGEDSINCE n) (RFC 7162 §3.1.3). */
      unchangedSince?: number;
      operation: 'set' | 'add' | 'remove';
      silent: boolean;
      flags: string[];
    }
  | { name: 'COPY' | 'MOVE'; set: SequenceSet; mailbox: string };

export type Command = CommandBody & { tag: string; uid: boolean };

export type CommandName = CommandBody['name'];

/** What may be logged about a command: never credentials, never message bytes (gluon's SanitizedString). */
export function sanitized(cmd: Command): string {
  const prefix = `${cmd.tag} ${cmd.uid ? 'UID ' : ''}${cmd.name}`;
  switch (cmd.name) {
    case 'LOGIN':
      return `${prefix} <redacted>`;
    case 'AUTHENTICATE':
      return `${prefix} ${cmd.mechanism}${cmd.initial !== null ? ' <redacted>' : ''}`;
    case 'APPEND':
      return `${prefix} (${[cmd.message, ...cmd.more.map((m) => m.message)].map((m) => m.length).join('+')} bytes)`;
    default:
      return prefix;
  }
}
