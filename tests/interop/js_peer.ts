/**
 * The reference peer for interop tests: a js-libp2p 3.x node with
 * `@libp2p/webrtc`, run under Deno in a process of its own (node-datachannel
 * allows one isolate per process, and a real peer should not share ours).
 *
 * `deno run -A tests/interop/js_peer.ts` listens on WebRTC-Direct on
 * 127.0.0.1, prints `listening <multiaddr>`, and serves `/echo/1.0.0`, ping
 * and identify. Commands arrive on stdin, one per line, and answers go to
 * stdout, one line each; a command that fails prints `error <message>`
 * instead. `dial`, `echo` and `ping` give up after 120 s; the test's own
 * bounded wait for the answer covers the others.
 *
 * - `request <peer-id> <protocol> <text>`: open a stream to that connected
 *   peer, write `text`, close the write side, read the reply to its end and
 *   print `reply <text>`.
 * - `agent <peer-id>`: print `agent <version>`, the agent version that peer
 *   gave in identify (empty if none yet).
 * - `roundtrip <peer-id> <protocol> <text>`: as `request`, but reads while
 *   it writes, so an immediate reply (an echo) is not missed: a js-libp2p 3
 *   stream does not keep what arrives before it is iterated.
 * - `dial <multiaddr>`: dial that WebRTC-Direct address and print
 *   `connected <peer-id>`; `request` then reaches it.
 * - `echo <peer-id> <protocol> <count> <size> <seed>`: open `count` streams
 *   at once; stream `i` writes `size` bytes of `randomBytes(random(seed + i))`
 *   (`../random.ts`) while it reads, closes its write side and reads to the
 *   end. Prints `echoed <ms> <sha256-hex>,…`, the time from the first open to
 *   the last end and the SHA-256 of what each stream read back, in order, so
 *   a test checks megabytes byte for byte without passing them through stdout.
 * - `ping <peer-id>`: libp2p ping (`@libp2p/ping`) that connected peer and
 *   print `pong <rtt-ms>`, js-libp2p's own measure (whole milliseconds).
 *
 * It exits when stdin closes. Loopback only, no ICE servers.
 */

import { createHash } from "node:crypto";
import { createLibp2p } from "libp2p";
import { webRTCDirect } from "@libp2p/webrtc";
import { identify } from "@libp2p/identify";
import { ping } from "@libp2p/ping";
import { peerIdFromString } from "@libp2p/peer-id";
import { multiaddr } from "@multiformats/multiaddr";
import { random, randomBytes } from "../random.ts";

const ECHO = "/echo/1.0.0";
/** The time limit of every command. */
const COMMAND_MS = 120_000;
/** What `echo` hands to `send()` at a time, so it waits on drain. */
const SEND_CHUNK = 64 * 1024;

const node = await createLibp2p({
  addresses: { listen: ["/ip4/127.0.0.1/udp/0/webrtc-direct"] },
  transports: [webRTCDirect({ rtcConfiguration: { iceServers: [] } })],
  services: { identify: identify(), ping: ping() },
  connectionGater: { denyDialMultiaddr: () => false },
});

// The outbound limit applies to `echo`'s streams too (default 64 per
// protocol and connection); leave room.
await node.handle(ECHO, async (stream) => {
  for await (const chunk of stream) {
    if (!stream.send(chunk)) await stream.onDrain();
  }
  await stream.close();
}, { maxInboundStreams: 128, maxOutboundStreams: 128 });

async function request(peer: string, protocol: string, text: string) {
  const stream = await node.dialProtocol(peerIdFromString(peer), protocol);
  stream.send(new TextEncoder().encode(text));
  // In js-libp2p 3, close() ends the write side (FIN); reading goes on.
  await stream.close();
  let reply = "";
  const decoder = new TextDecoder();
  for await (const chunk of stream) {
    reply += decoder.decode(chunk.subarray(), { stream: true });
  }
  return reply;
}

async function roundtrip(peer: string, protocol: string, text: string) {
  const stream = await node.dialProtocol(peerIdFromString(peer), protocol);
  const reading = (async () => {
    let reply = "";
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      reply += decoder.decode(chunk.subarray(), { stream: true });
    }
    return reply;
  })();
  stream.send(new TextEncoder().encode(text));
  await stream.close();
  return await reading;
}

/** One `echo` stream: the SHA-256 (hex) of what came back. */
async function echoOne(
  peer: string,
  protocol: string,
  data: Uint8Array,
  signal: AbortSignal,
): Promise<string> {
  const stream = await node.dialProtocol(peerIdFromString(peer), protocol, {
    signal,
  });
  // Ends a read or a drain wait that would otherwise outlive the command.
  const onAbort = () => stream.abort(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    const reading = (async () => {
      const hash = createHash("sha256");
      for await (const chunk of stream) hash.update(chunk.subarray());
      return hash.digest("hex");
    })();
    const writing = (async () => {
      for (let at = 0; at < data.length; at += SEND_CHUNK) {
        if (!stream.send(data.subarray(at, at + SEND_CHUNK))) {
          await stream.onDrain({ signal });
        }
      }
      await stream.close({ signal });
    })();
    const [digest] = await Promise.all([reading, writing]);
    return digest;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

async function echo(
  peer: string,
  protocol: string,
  count: number,
  size: number,
  seed: number,
  signal: AbortSignal,
): Promise<string> {
  const data = Array.from(
    { length: count },
    (_, i) => randomBytes(random(seed + i), size),
  );
  const started = performance.now();
  const digests = await Promise.all(
    data.map((bytes) => echoOne(peer, protocol, bytes, signal)),
  );
  const ms = performance.now() - started;
  return `echoed ${ms.toFixed(1)} ${digests.join(",")}`;
}

/** Prints the line `work` resolves with, or `error <message>`. */
function answer(work: Promise<string>): void {
  work.then(
    (line) => console.log(line),
    (error) =>
      console.log(`error ${String(error?.message).replace(/\s+/g, " ")}`),
  );
}

function run(line: string): void {
  const [command, peer, protocol, ...rest] = line.split(" ");
  const signal = AbortSignal.timeout(COMMAND_MS);
  if (command === "agent") {
    answer(
      node.peerStore.get(peerIdFromString(peer)).then((p) =>
        `agent ${new TextDecoder().decode(p.metadata.get("AgentVersion"))}`
      ),
    );
  } else if (command === "roundtrip") {
    answer(
      roundtrip(peer, protocol, rest.join(" ")).then((r) => `reply ${r}`),
    );
  } else if (command === "dial") {
    answer(
      node.dial(multiaddr(peer), { signal }).then((connection) =>
        `connected ${connection.remotePeer}`
      ),
    );
  } else if (command === "request") {
    answer(request(peer, protocol, rest.join(" ")).then((r) => `reply ${r}`));
  } else if (command === "echo") {
    const [count, size, seed] = rest.map(Number);
    answer(echo(peer, protocol, count, size, seed, signal));
  } else if (command === "ping") {
    answer(
      node.services.ping.ping(peerIdFromString(peer), { signal }).then((rtt) =>
        `pong ${rtt}`
      ),
    );
  }
}

const addr = node.getMultiaddrs().find((ma) =>
  ma.toString().includes("/webrtc-direct/")
);
console.log(`listening ${addr}`);

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

// js-libp2p's stop() can hang with WebRTC (js-libp2p#2625): bound it.
await Promise.race([
  node.stop(),
  new Promise((resolve) => setTimeout(resolve, 2000)),
]);
Deno.exit(0);
