/**
 * Ordered, never re-entrant delivery of events to the caller's handlers.
 *
 * Internal to the werift backend.
 *
 * @module
 */

/**
 * Delivers events one at a time, in the order they happened, and never one
 * inside another: an event that happens while a handler runs, or while the
 * caller is inside `send()` or `close()`, waits until that returns (in the
 * second case, until a microtask). A handler that throws is reported as an
 * uncaught error instead of unwinding into werift, whose state machines are
 * not written to survive it.
 *
 * One dispatcher serves a peer connection and all its channels, so their
 * events stay in order with each other (a channel is announced before its
 * messages, its `onclose` comes before the connection's `closed`).
 */
export class Dispatcher {
  #busy = 0;
  #queue: (() => void)[] = [];
  #scheduled = false;

  /** Delivers `event` now if nothing else is running, else in its turn. */
  post(event: () => void): void {
    this.#queue.push(event);
    if (this.#busy === 0) this.#drain();
    else this.#schedule();
  }

  /** Runs `fn` with delivery held back until it returns. */
  hold<T>(fn: () => T): T {
    this.#busy++;
    try {
      return fn();
    } finally {
      this.#busy--;
      if (this.#queue.length > 0) this.#schedule();
    }
  }

  #drain(): void {
    this.#busy++;
    try {
      while (this.#queue.length > 0) deliver(this.#queue.shift()!);
    } finally {
      this.#busy--;
    }
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      // hold() and #drain() never span an await, so nothing is running now.
      if (this.#busy === 0) this.#drain();
    });
  }
}

function deliver(event: () => void): void {
  try {
    event();
  } catch (error) {
    reportError(error);
  }
}
