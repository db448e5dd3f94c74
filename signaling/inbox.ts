/**
 * The receiving half of a signalling channel that is handed whole messages
 * (the in-process pair, a rendezvous attempt): the messages not yet read,
 * whether the peer has ended, or the error that ended the channel, and a
 * `next()` that waits for the next of them.
 *
 * Internal to the signalling modules.
 *
 * @module
 */

/** Messages waiting to be read, then the end of them, or an error. */
export class Inbox<T> {
  #queue: T[] = [];
  #waiter: PromiseWithResolvers<void> | undefined;
  #error: Error | undefined;
  #ended = false;

  /** How many messages wait to be read. */
  get length(): number {
    return this.#queue.length;
  }

  /** The error that ended the channel, if one did. */
  get error(): Error | undefined {
    return this.#error;
  }

  /** Whether the peer has said it sends nothing more. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Adds a message; after the end or an error there is nobody to read it. */
  push(message: T): void {
    if (this.#error || this.#ended) return;
    this.#queue.push(message);
    this.#wake();
  }

  /** The peer sends nothing more: `next()` gives `null` once the rest is read. */
  end(): void {
    if (this.#error || this.#ended) return;
    this.#ended = true;
    this.#wake();
  }

  /** Ends the channel with `error`, dropping what was not read; the first error holds. */
  fail(error: Error): void {
    this.#error ??= error;
    this.#queue = [];
    this.#wake();
  }

  /**
   * The next message, `null` once the peer has ended and all are read, or the
   * error that ended the channel (thrown). Gives up with `signal`'s reason.
   */
  async next(signal?: AbortSignal): Promise<T | null> {
    while (this.#queue.length === 0) {
      if (this.#error) throw this.#error;
      if (this.#ended) return null;
      signal?.throwIfAborted();
      this.#waiter ??= Promise.withResolvers();
      const wait = this.#waiter.promise;
      if (!signal) {
        await wait;
        continue;
      }
      const { promise: aborted, reject } = Promise.withResolvers<never>();
      const onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        await Promise.race([wait, aborted]);
      } finally {
        signal.removeEventListener("abort", onAbort);
      }
    }
    return this.#queue.shift()!;
  }

  #wake(): void {
    this.#waiter?.resolve();
    this.#waiter = undefined;
  }
}
