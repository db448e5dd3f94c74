/**
 * The reference peer for interop tests: a js-libp2p 3.x node with
 * `@libp2p/webrtc`, run under Deno in a process of its own (node-datachannel
 * allows one isolate per process, and a real peer should not share ours).
 *
 * `deno run -A tests/interop/js_peer.ts` listens on WebRTC-Direct on
 * 127.0.0.1, prints `listening <multiaddr>`, and serves `/echo/1.0.0`, ping
 * and identify. Commands arrive on stdin, one per line, and answers go to
 * stdout:
 *
 * - `request <peer-id> <protocol> <text>`: open a stream to that connected
 *   peer, write `text`, close the write side, read the reply to its end and
 *   print `reply <text>` (or `error <message>`).
 * - `agent <peer-id>`: print `agent <version>`, the agent version that peer
 *   gave in identify (empty if none yet).
 * - `roundtrip <peer-id> <protocol> <text>`: as `request`, but reads while
 *   it writes, so an immediate reply (an echo) is not missed: a js-libp2p 3
 *   stream does not keep what arrives before it is iterated.
 * - `dial <multiaddr>`: dial that WebRTC-Direct address and print
 *   `connected <peer-id>` (or `error <message>`); `request` then reaches it.
 *
 * It exits when stdin closes. Loopback only, no ICE servers.
 */

import { createLibp2p } from "libp2p";
import { webRTCDirect } from "@libp2p/webrtc";
import { identify } from "@libp2p/identify";
import { ping } from "@libp2p/ping";
import { peerIdFromString } from "@libp2p/peer-id";
import { multiaddr } from "@multiformats/multiaddr";

const ECHO = "/echo/1.0.0";

const node = await createLibp2p({
  addresses: { listen: ["/ip4/127.0.0.1/udp/0/webrtc-direct"] },
  transports: [webRTCDirect({ rtcConfiguration: { iceServers: [] } })],
  services: { identify: identify(), ping: ping() },
  connectionGater: { denyDialMultiaddr: () => false },
});

await node.handle(ECHO, async (stream) => {
  for await (const chunk of stream) {
    if (!stream.send(chunk)) await stream.onDrain();
  }
  await stream.close();
}, { maxInboundStreams: 128 });

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
    const [command, peer, protocol, ...rest] = pending.slice(0, end).split(" ");
    pending = pending.slice(end + 1);
    if (command === "agent") {
      node.peerStore.get(peerIdFromString(peer)).then(
        (p) =>
          console.log(
            `agent ${new TextDecoder().decode(p.metadata.get("AgentVersion"))}`,
          ),
        (error) => console.log(`error ${error.message}`),
      );
    } else if (command === "roundtrip") {
      roundtrip(peer, protocol, rest.join(" ")).then(
        (reply) => console.log(`reply ${reply}`),
        (error) => console.log(`error ${error.message}`),
      );
    } else if (command === "dial") {
      node.dial(multiaddr(peer)).then(
        (connection) => console.log(`connected ${connection.remotePeer}`),
        (error) => console.log(`error ${error.message}`),
      );
    } else if (command === "request") {
      request(peer, protocol, rest.join(" ")).then(
        (reply) => console.log(`reply ${reply}`),
        (error) => console.log(`error ${error.message}`),
      );
    }
  }
}

// js-libp2p's stop() can hang with WebRTC (js-libp2p#2625): bound it.
await Promise.race([
  node.stop(),
  new Promise((resolve) => setTimeout(resolve, 2000)),
]);
Deno.exit(0);
