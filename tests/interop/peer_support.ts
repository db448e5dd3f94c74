/**
 * What the js-libp2p nodes of the interop tests share, in child processes
 * and in the test process alike: the echo protocol, an echo client that
 * checks bytes by hash, and the stdin command loop of a peer script.
 */

import { createHash } from "node:crypto";
import type { Libp2p, Stream } from "@libp2p/interface";

/** The echo protocol every test node serves. */
export const ECHO = "/echo/1.0.0";
/** What {@linkcode echoHash} hands to `send()` at a time, so it waits on drain. */
const SEND_CHUNK = 64 * 1024;

/** Serves {@linkcode ECHO} on `node`: every byte back, then end. */
export async function serveEcho(node: Libp2p): Promise<void> {
  await node.handle(ECHO, async (stream) => {
    for await (const chunk of stream) {
      if (!stream.send(chunk)) await stream.onDrain();
    }
    await stream.close();
  });
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
 * Runs `run` for each line of stdin until it closes, then stops `node` (at
 * most 2 s: js-libp2p's stop() can hang with WebRTC, js-libp2p#2625) and
 * exits.
 */
export async function runCommands(
  node: Libp2p,
  run: (line: string) => void,
): Promise<never> {
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
