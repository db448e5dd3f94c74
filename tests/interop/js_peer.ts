/**
 * The reference peer for interop tests: a js-libp2p 3.x node with
 * `@libp2p/webrtc`, run under Deno in a process of its own (node-datachannel
 * allows one isolate per process, and a real peer should not share ours).
 * Tests start it with `JsPeer.start()` (`../interop_cases.ts`).
 *
 * `deno run -A tests/interop/js_peer.ts` listens on WebRTC-Direct on
 * 127.0.0.1, prints `listening <multiaddr>`, and serves `/echo/1.0.0`, ping
 * and identify. Commands arrive on stdin, one per line, and answers go to
 * stdout, one line each; a command that fails prints `error <message>`
 * instead (`peer_support.ts`'s `runCommands`). `dial`, `echo` and `ping`
 * give up after 120 s; the test's own bounded wait for the answer covers the
 * others.
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

import { createLibp2p } from "libp2p";
import { webRTCDirect } from "@libp2p/webrtc";
import { identify } from "@libp2p/identify";
import type { Stream } from "@libp2p/interface";
import { ping } from "@libp2p/ping";
import { peerIdFromString } from "@libp2p/peer-id";
import { multiaddr } from "@multiformats/multiaddr";
import { random, randomBytes } from "../random.ts";
import { echoHash, runCommands, serveEcho } from "./peer_support.ts";

const node = await createLibp2p({
  addresses: { listen: ["/ip4/127.0.0.1/udp/0/webrtc-direct"] },
  transports: [webRTCDirect({ rtcConfiguration: { iceServers: [] } })],
  services: { identify: identify(), ping: ping() },
  connectionGater: { denyDialMultiaddr: () => false },
});

// The outbound limit applies to `echo`'s streams too (default 64 per
// protocol and connection); leave room.
await serveEcho(node, { maxInboundStreams: 128, maxOutboundStreams: 128 });

/** Reads `stream` to its end as UTF-8 text. */
async function readText(stream: Stream): Promise<string> {
  let text = "";
  const decoder = new TextDecoder();
  for await (const chunk of stream) {
    text += decoder.decode(chunk.subarray(), { stream: true });
  }
  return text;
}

/**
 * Opens `protocol` to `peer`, sends the other words as text and closes the
 * write side (in js-libp2p 3, close() ends the write side with a FIN;
 * reading goes on).
 * `request` reads the reply only then; `roundtrip` reads from the start.
 */
async function exchange(
  [peer, protocol, ...words]: string[],
  readFirst: boolean,
): Promise<string> {
  const stream = await node.dialProtocol(peerIdFromString(peer), protocol);
  const reading = readFirst ? readText(stream) : undefined;
  stream.send(new TextEncoder().encode(words.join(" ")));
  await stream.close();
  return `reply ${await (reading ?? readText(stream))}`;
}

/** The `echo` command: `count` seeded streams at once, hashed. */
async function echo(
  [peer, protocol, ...numbers]: string[],
  signal: AbortSignal,
): Promise<string> {
  const [count, size, seed] = numbers.map(Number);
  const data = Array.from(
    { length: count },
    (_, i) => randomBytes(random(seed + i), size),
  );
  const started = performance.now();
  const digests = await Promise.all(data.map(async (bytes) => {
    const stream = await node.dialProtocol(peerIdFromString(peer), protocol, {
      signal,
    });
    return await echoHash(stream, bytes, signal);
  }));
  const ms = performance.now() - started;
  return `echoed ${ms.toFixed(1)} ${digests.join(",")}`;
}

const addr = node.getMultiaddrs().find((ma) =>
  ma.toString().includes("/webrtc-direct/")
);

await runCommands(node, String(addr), {
  agent: async ([peer]) => {
    const { metadata } = await node.peerStore.get(peerIdFromString(peer));
    return `agent ${new TextDecoder().decode(metadata.get("AgentVersion"))}`;
  },
  request: (args) => exchange(args, false),
  roundtrip: (args) => exchange(args, true),
  dial: async ([to], signal) =>
    `connected ${(await node.dial(multiaddr(to), { signal })).remotePeer}`,
  echo,
  ping: async ([peer], signal) =>
    `pong ${await node.services.ping.ping(peerIdFromString(peer), { signal })}`,
});
