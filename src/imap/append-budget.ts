/**
 * How many bytes of APPENDed messages the proxy holds at once. An APPEND is read whole
 * before it is encrypted (the ciphertext's length must be announced upstream first), so
 * parallel APPENDs multiply memory: each account may hold at most two maximum-size
 * messages' worth, the whole gateway at most four. A literal that does not fit is refused
 * before it is read (`NO [LIMIT]`, RFC 5530): the client retries later, nothing is stored.
 */
export interface AppendBudgetOptions {
  /** Bytes one account's APPENDs may hold at once. */
  perAccount: number;
  /** Bytes all APPENDs may hold at once. */
  total: number;
}

export class AppendBudget {
  private readonly held = new Map<string, number>();
  private heldTotal = 0;

  constructor(private readonly options: AppendBudgetOptions) {}

  /** Takes `bytes` for `account` if both budgets allow it; false otherwise. */
  reserve(account: string, bytes: number): boolean {
    const mine = this.held.get(account) ?? 0;
    if (mine + bytes > this.options.perAccount || this.heldTotal + bytes > this.options.total)
      return false;
    this.held.set(account, mine + bytes);
    this.heldTotal += bytes;
    return true;
  }

  release(account: string, bytes: number): void {
    const mine = (this.held.get(account) ?? 0) - bytes;
    if (mine > 0) this.held.set(account, mine);
    else this.held.delete(account);
    this.heldTotal = Math.max(0, this.heldTotal - bytes);
  }

  heldBy(account: string): number {
    return this.held.get(account) ?? 0;
  }
}
