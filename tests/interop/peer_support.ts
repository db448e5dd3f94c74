/**
 * What the js-libp2p nodes of the interop tests share, in child processes
 * and in the test process alike: the echo protocol, an echo client that
 * checks bytes by hash, and the line protocol of a peer script (its
 * `listening` line, then one answer line per stdin command), whose other
 * end is `child_peer.ts`.
 */

import { createHash } from "node:crypto";
import type { Libp2p, Stream, StreamHandlerOptions } from "@libp2p/interface";

/** The echo protocol every test node serves. */
export const ECHO = "/echo/1.0.0";
/** What {@linkcode echoHash} hands to `send()` at a time, so it waits on drain. */
const SEND_CHUNK = 64 * 1024;
/** The time limit of every command of a peer script. */
export const COMMAND_MS = 120_000;

/**
 * Serves {@linkcode ECHO} on `node`: every byte back, then end. `options`
 * go to `handle()` (stream limits, say).
 */
export async function serveEcho(
  node: Libp2p,
  options?: StreamHandlerOptions,
): Promise<void> {
  await node.handle(ECHO, async (stream) => {
    for await (const chunk of stream) {
      if (!stream.send(chunk)) await stream.onDrain();
    }
    await stream.close();
  }, options);
}

/** The SHA-256 of `bytes`, in hex: what {@linkcode echoHash} returns. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * Writes `data` on `stream` while reading what comes back, closes the write
 * side and reads to the end; returns the SHA-256 (hex) of what was read.
 * `signal` aborts the stream, which ends every wait.
 */
export async function echoHash(
  stream: Stream,
  data: Uint8Array,
  signal: AbortSignal,
): Promise<string> {
  const onAbort = () => stream.abort(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    const reading = (async () => {
      const hash = createHash("sha256");
      for await (const chunk of stream) hash.update(chunk.subarray());
      return hash.digest("hex");
    })();
    for (let at = 0; at < data.length; at += SEND_CHUNK) {
      if (!stream.send(data.subarray(at, at + SEND_CHUNK))) {
        await stream.onDrain({ signal });
      }
    }
    await stream.close({ signal });
    return await reading;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

/**
 * One command of a peer script: given the words after its name and a signal
 * that aborts after {@linkcode COMMAND_MS}, resolves with its answer line.
 */
export type Command = (args: string[], signal: AbortSignal) => Promise<string>;

/**
 * Prints `listening <addr>`, then runs each stdin line as a command of
 * `commands` (its first word names it) and prints the answer, or `error
 * <message>` for a failed or unknown command. When stdin closes it stops
 * `node` (at most 2 s: js-libp2p's stop() can hang with WebRTC,
 * js-libp2p#2625) and exits.
 */
/** A rejection reason as one line: an Error's name and message, or its type. */
function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  const type = (error as { type?: unknown })?.type;
  const kind = (error as object | null)?.constructor?.name ?? typeof error;
  return type === undefined ? `${kind} ${String(error)}` : `${kind} ${type}`;
}

export async function runCommands(
  node: Libp2p,
  addr: string,
  commands: Record<string, Command>,
): Promise<never> {
  console.log(`listening ${addr}`);
  const run = (line: string) => {
    const [name, ...args] = line.split(" ");
    const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
    const work = command
      ? Promise.resolve().then(() =>
        command(args, AbortSignal.timeout(COMMAND_MS))
      )
      : Promise.reject(new Error(`unknown command ${name}`));
    work.then(
      (answer) => console.log(answer),
      // Not every rejection is an Error (an RTC event, say): name what it is.
      (error) =>
        console.log(`error ${describeError(error).replace(/\s+/g, " ")}`),
    );
  };
  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
  let pending = "";
  for await (const chunk of lines) {
    pending += chunk;
    let end;
    while ((end = pending.indexOf("\n")) >= 0) {
      run(pending.slice(0, end));
      pending = pending.slice(end + 1);
    }
  }
  await Promise.race([
    node.stop(),
    new Promise((resolve) => setTimeout(resolve, 2000)),
  ]);
  Deno.exit(0);
}
