import type { SortFacts } from './sort-facts.js';

/** A thread tree node; `msg` null is a dummy (a message referred to but not in the set). */
export interface ThreadNode {
  msg: SortFacts | null;
  parent: ThreadNode | null;
  children: ThreadNode[];
}

const node = (msg: SortFacts | null): ThreadNode => ({ msg, parent: null, children: [] });

function bySent(a: SortFacts, b: SortFacts): number {
  return a.sent - b.sent || a.seq - b.seq;
}

/** A dummy sorts by its first child (RFC 5256 §3 REFERENCES step 6). */
function nodeFacts(n: ThreadNode): SortFacts | null {
  let cur: ThreadNode | undefined = n;
  while (cur !== undefined && cur.msg === null) cur = cur.children[0];
  return cur?.msg ?? null;
}

function sortNodes(nodes: ThreadNode[]): void {
  nodes.sort((a, b) => {
    const fa = nodeFacts(a);
    const fb = nodeFacts(b);
    if (fa === null || fb === null) return fa === null ? (fb === null ? 0 : 1) : -1;
    return bySent(fa, fb);
  });
}

/**
 * ORDEREDSUBJECT (RFC 5256 §3): messages grouped by base subject; in each group the
 * earliest (sent date, then sequence number) is the parent of all the others; threads
 * ordered by their first message's sent date.
 */
export function orderedSubjectThreads(facts: SortFacts[]): ThreadNode[] {
  const groups = new Map<string, SortFacts[]>();
  for (const f of facts) {
    const key = f.subjectKey;
    const g = groups.get(key);
    if (g === undefined) groups.set(key, [f]);
    else g.push(f);
  }
  const roots: ThreadNode[] = [];
  for (const group of groups.values()) {
    group.sort(bySent);
    const root = node(group[0] as SortFacts);
    for (const f of group.slice(1)) {
      const child = node(f);
      child.parent = root;
      root.children.push(child);
    }
    roots.push(root);
  }
  sortNodes(roots);
  return roots;
}

function isAncestor(a: ThreadNode, b: ThreadNode): boolean {
  for (let cur: ThreadNode | null = b; cur !== null; cur = cur.parent) if (cur === a) return true;
  return false;
}

function unlink(child: ThreadNode): void {
  const p = child.parent;
  if (p === null) return;
  p.children.splice(p.children.indexOf(child), 1);
  child.parent = null;
}

function link(parent: ThreadNode, child: ThreadNode): void {
  child.parent = parent;
  parent.children.push(child);
}

/**
 * REFERENCES (RFC 5256 §3, steps 1–6): parent/child links from References (or the
 * first In-Reply-To id), dummies for referenced messages not in the set, pruned; root
 * threads with the same base subject merged; siblings sorted by sent date.
 */
export function referencesThreads(facts: SortFacts[]): ThreadNode[] {
  const byId = new Map<string, ThreadNode>();
  const all: ThreadNode[] = [];
  const container = (id: string): ThreadNode => {
    let c = byId.get(id);
    if (c === undefined) {
      c = node(null);
      byId.set(id, c);
      all.push(c);
    }
    return c;
  };
  // Step 1, in sequence order so that a duplicate Message-ID stays with the lowest number.
  for (const f of [...facts].sort((a, b) => a.seq - b.seq)) {
    let self: ThreadNode;
    const existing = f.messageId === null ? undefined : byId.get(f.messageId);
    if (f.messageId !== null && (existing === undefined || existing.msg === null)) {
      self = container(f.messageId);
      self.msg = f;
    } else {
      self = node(f);
      all.push(self);
    }
    const refs = f.references.length > 0 ? f.references : f.inReplyTo === null ? [] : [f.inReplyTo];
    // (A) each reference is the parent of the next, unless already linked or a loop.
    for (let i = 0; i + 1 < refs.length; i++) {
      const parent = container(refs[i] as string);
      const child = container(refs[i + 1] as string);
      if (child.parent === null && parent !== child && !isAncestor(child, parent))
        link(parent, child);
    }
    // (B) the last reference is this message's parent, replacing any earlier link.
    const last = refs.length > 0 ? container(refs[refs.length - 1] as string) : null;
    if (last !== null && (last === self || isAncestor(self, last))) continue;
    unlink(self);
    if (last !== null) link(last, self);
  }
  // Step 2: the root set; step 4: prune dummies.
  let roots = prune(
    all.filter((n) => n.parent === null),
    true,
  );
  // Step 5: merge root threads by base subject.
  for (const r of roots) sortNodes(r.children);
  roots = mergeBySubject(roots);
  // Step 6: siblings by sent date, all the way down.
  const sortDeep = (nodes: ThreadNode[]): void => {
    for (const n of nodes) sortDeep(n.children);
    sortNodes(nodes);
  };
  sortDeep(roots);
  return roots;
}

/**
 * Step 4: a dummy without children goes; one with children is replaced by them, except
 * at the root when it has more than one (they would become separate threads).
 */
function prune(nodes: ThreadNode[], atRoot: boolean): ThreadNode[] {
  const out: ThreadNode[] = [];
  for (const n of nodes) {
    n.children = prune(n.children, false);
    for (const c of n.children) c.parent = n;
    if (n.msg !== null) {
      out.push(n);
      continue;
    }
    if (n.children.length === 0) continue;
    if (atRoot && n.children.length > 1) {
      out.push(n);
      continue;
    }
    for (const c of n.children) {
      c.parent = atRoot ? null : n.parent;
      out.push(c);
    }
  }
  return out;
}

function threadSubject(n: ThreadNode): { base: string; reply: boolean } | null {
  const f = n.msg ?? n.children[0]?.msg ?? null;
  if (f === null || f.subject.base === '') return null;
  return { base: f.subjectKey, reply: f.subject.reply };
}

/** Step 5 (A–C). */
function mergeBySubject(roots: ThreadNode[]): ThreadNode[] {
  const table = new Map<string, ThreadNode>();
  for (const r of roots) {
    const subj = threadSubject(r);
    if (subj === null) continue;
    const old = table.get(subj.base);
    if (
      old === undefined ||
      (r.msg === null && old.msg !== null) ||
      (old.msg !== null && old.msg.subject.reply && r.msg !== null && !subj.reply)
    )
      table.set(subj.base, r);
  }
  const out: ThreadNode[] = [];
  const replaced = new Map<ThreadNode, ThreadNode>();
  for (const r of roots) {
    const merged = replaced.get(r);
    if (merged !== undefined) {
      out.push(merged);
      continue;
    }
    const subj = threadSubject(r);
    const entry = subj === null ? undefined : table.get(subj.base);
    if (subj === null || entry === undefined || entry === r) {
      out.push(r);
      continue;
    }
    if (entry.msg === null && r.msg === null) {
      for (const c of r.children) link(entry, c);
      r.children = [];
    } else if (entry.msg === null) {
      link(entry, r);
    } else if (r.msg !== null && subj.reply && !entry.msg.subject.reply) {
      link(entry, r);
    } else {
      const dummy = node(null);
      const at = out.indexOf(entry);
      link(dummy, entry);
      link(dummy, r);
      table.set(subj.base, dummy);
      if (at !== -1) out[at] = dummy;
      else replaced.set(entry, dummy);
    }
  }
  return out;
}

/** thread-list: "(" thread-members / thread-nested ")" per thread (RFC 5256 §5). */
export function formatThreads(roots: ThreadNode[], id: (f: SortFacts) => number): string {
  const members = (n: ThreadNode): string => {
    const kids = n.children;
    if (n.msg === null) {
      return kids.length === 1
        ? members(kids[0] as ThreadNode)
        : kids.map((c) => `(${members(c)})`).join('');
    }
    const self = String(id(n.msg));
    if (kids.length === 0) return self;
    if (kids.length === 1) return `${self} ${members(kids[0] as ThreadNode)}`;
    return `${self} ${kids.map((c) => `(${members(c)})`).join('')}`;
  };
  return roots.map((r) => `(${members(r)})`).join('');
}
