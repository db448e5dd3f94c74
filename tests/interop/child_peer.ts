/**
 * A peer script in a child process, driven by lines: commands go to its
 * stdin, answers come from its stdout, one line each, `error <message>` for
 * a failure (the script's side is `peer_support.ts`'s `runCommands`). Every
 * wait is bounded.
 */

import { TimeoutError } from "../../core/errors.ts";

/** How {@linkcode ChildPeer.start} waits for a peer script. */
export interface ChildPeerOptions {
  /** How long to wait for its `listening` line (default 60 s). */
  startMs?: number;
  /**
   * How many times to start it in all, while it exits before listening
   * (default 1): for a script that can lose a race for a port.
   */
  attempts?: number;
}

/** A running peer script and its line channel. */
export class ChildPeer implements AsyncDisposable {
  /** What the script printed after `listening `: its address. */
  readonly addr: string;
  readonly #child: Deno.ChildProcess;
  readonly #reader: ReadableStreamDefaultReader<string>;
  #pending = "";
  /** A read outlives an expect() that timed out; the next one takes it. */
  #read: Promise<ReadableStreamReadResult<string>> | undefined;
  /** Whether its stdout has ended: the process is exiting or gone. */
  #exited = false;

  private constructor(
    child: Deno.ChildProcess,
    reader: ReadableStreamDefaultReader<string>,
  ) {
    this.#child = child;
    this.#reader = reader;
    this.addr = "";
  }

  /**
   * Runs `script` (next to this file) with `args` and waits, at most
   * `startMs`, for its `listening <addr>` line; starts it again, up to
   * `attempts` in all, if it exits before that line.
   */
  static async start(
    script: string,
    args: string[] = [],
    { startMs = 60_000, attempts = 1 }: ChildPeerOptions = {},
  ): Promise<ChildPeer> {
    for (let attempt = 1;; attempt++) {
      const peer = ChildPeer.#spawn(script, args);
      try {
        (peer as { addr: string }).addr = await peer.expect(
          "listening ",
          startMs,
        );
        return peer;
      } catch (error) {
        await peer[Symbol.asyncDispose]();
        if (attempt >= attempts || !peer.#exited) throw error;
      }
    }
  }

  static #spawn(script: string, args: string[]): ChildPeer {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "-A",
        new URL(script, import.meta.url).pathname,
        ...args,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    return new ChildPeer(
      child,
      child.stdout.pipeThrough(new TextDecoderStream()).getReader(),
    );
  }

  /** The peer id at the end of {@linkcode ChildPeer.addr}. */
  get peerId(): string {
    return this.addr.slice(this.addr.lastIndexOf("/p2p/") + 5);
  }

  /** Sends one command line. */
  async command(line: string): Promise<void> {
    const writer = this.#child.stdin.getWriter();
    try {
      await writer.write(new TextEncoder().encode(`${line}\n`));
    } finally {
      writer.releaseLock();
    }
  }

  /** Sends `line` and returns the rest of the answer starting with `prefix`. */
  async ask(line: string, prefix: string, ms = 120_000): Promise<string> {
    await this.command(line);
    return await this.expect(prefix, ms);
  }

  /**
   * Reads lines until one starts with `prefix` and returns its rest; an
   * `error ` line throws, and so does waiting past `ms`.
   */
  async expect(prefix: string, ms = 20_000): Promise<string> {
    const deadline = AbortSignal.timeout(ms);
    const expired = new Promise<never>((_, reject) =>
      deadline.addEventListener(
        "abort",
        () => reject(new TimeoutError(`no "${prefix}" line within ${ms} ms`)),
        { once: true },
      )
    );
    expired.catch(() => {});
    while (true) {
      let end: number;
      while ((end = this.#pending.indexOf("\n")) >= 0) {
        const line = this.#pending.slice(0, end);
        this.#pending = this.#pending.slice(end + 1);
        if (line.startsWith(prefix)) return line.slice(prefix.length);
        if (line.startsWith("error ")) throw new Error(line);
      }
      this.#read ??= this.#reader.read();
      const { value, done } = await Promise.race([this.#read, expired]);
      this.#read = undefined;
      if (done) {
        this.#exited = true;
        throw new Error(`the peer exited before "${prefix}"`);
      }
      this.#pending += value;
    }
  }

  /** Closes its stdin, which ends it, and waits for it (10 s, then kills). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.#child.stdin.close().catch(() => {});
    await this.#reader.cancel().catch(() => {});
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), 10_000);
    try {
      await this.#child.status;
    } finally {
      clearTimeout(timer);
    }
  }
}
