/**
 * js-libp2p 3.x nodes for the `/webrtc` (private-to-private) interop tests,
 * each run under Deno in a process of its own. The first argument picks the
 * node:
 *
 * - `relay`: a circuit relay v2 server (`@libp2p/circuit-relay-v2`) over TCP
 *   on 127.0.0.1. Prints `listening <multiaddr>/p2p/<relay id>`.
 * - `webrtc <relay-addr>`: a plain js-libp2p node with `@libp2p/webrtc`'s
 *   `webRTC()` and the circuit relay transport. It takes a reservation on the
 *   relay, listens on `/webrtc` through it, serves `/echo/1.0.0`, and prints
 *   `listening <relay-addr>/p2p-circuit/webrtc/p2p/<id>`.
 * - `garbage <relay-addr>`: a node without WebRTC that answers
 *   `/webrtc-signaling/0.0.1` with bytes that are not signalling messages,
 *   reserved on the relay like `webrtc`; it prints the `/webrtc` address a
 *   WebRTC node there would have, so a dialer tries to signal with it.
 *
 * Commands arrive on stdin, one per line; each prints one line, or
 * `error <message>`, and gives up after 120 s (`peer_support.ts`'s
 * `runCommands`; getting an address has the same bound):
 *
 * - `dial <multiaddr>`: dial and print `connected <peer-id> <remote-addr>`.
 * - `echo <peer-id> <protocol> <size> <seed>` (`webrtc`): on the `/webrtc`
 *   connection to that peer, write `size` bytes of
 *   `randomBytes(random(seed))` (`../random.ts`) while reading the echo,
 *   close the write side, read to the end, and print `echoed <sha256-hex>`.
 * - `garbage <multiaddr>` (`garbage`): dial that relayed address, open a
 *   signalling stream on it, write garbage, and print `sent`.
 *
 * It exits when stdin closes. Loopback only: no ICE servers, and WebRTC
 * gathers on 127.0.0.1 alone.
 */

import { createLibp2p, type Libp2pOptions } from "libp2p";
import {
  circuitRelayServer,
  circuitRelayTransport,
} from "@libp2p/circuit-relay-v2";
import { identify } from "@libp2p/identify";
import type { Connection, Libp2p } from "@libp2p/interface";
import { noise } from "@libp2p/noise";
import { peerIdFromString } from "@libp2p/peer-id";
import { tcp } from "@libp2p/tcp";
import { webRTC } from "@libp2p/webrtc";
import { yamux } from "@libp2p/yamux";
import { multiaddr } from "@multiformats/multiaddr";
import { random, randomBytes } from "../random.ts";
import {
  COMMAND_MS,
  echoHash,
  runCommands,
  serveEcho,
} from "./peer_support.ts";

const SIGNALING = "/webrtc-signaling/0.0.1";
/**
 * Not a signalling message: a length prefix announcing 2 GiB, then junk. A
 * reader must refuse it from the prefix, before waiting for the body.
 */
const GARBAGE = new Uint8Array([0x80, 0x80, 0x80, 0x80, 0x08, 0xde, 0xad]);

const [mode, relayAddr] = Deno.args;

const common: Libp2pOptions = {
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  connectionGater: { denyDialMultiaddr: () => false },
  // A /webrtc dial is a relayed dial, signalling and ICE in one: give a
  // loaded machine more than the 6 s per address js-libp2p allows.
  connectionManager: { dialTimeout: 60_000, addressDialTimeout: 60_000 },
};

async function start(): Promise<Libp2p> {
  if (mode === "relay") {
    return await createLibp2p({
      ...common,
      addresses: { listen: ["/ip4/127.0.0.1/tcp/0"] },
      transports: [tcp()],
      services: { identify: identify(), relay: circuitRelayServer() },
    });
  }
  const listen = [`${relayAddr}/p2p-circuit`];
  const transports: Libp2pOptions["transports"] = [
    tcp(),
    circuitRelayTransport(),
  ];
  if (mode === "webrtc") {
    listen.push("/webrtc");
    // node-datachannel takes `bindAddress` through the polyfill's config.
    const rtcConfiguration = { iceServers: [], bindAddress: "127.0.0.1" };
    transports.push(webRTC({ rtcConfiguration }));
  }
  return await createLibp2p({
    ...common,
    addresses: { listen },
    transports,
    services: { identify: identify() },
  });
}

const node = await start();

await serveEcho(node);

if (mode === "garbage") {
  await node.handle(SIGNALING, (stream) => {
    stream.send(GARBAGE);
  }, { runOnLimitedConnection: true });
}

/** The address to print once the node has it, or `undefined` for now. */
function ownAddress(): string | undefined {
  const addrs = node.getMultiaddrs().map(String);
  if (mode === "relay") return addrs.find((a) => a.includes("/tcp/"));
  const circuit = addrs.find((a) => a.includes("/p2p-circuit"));
  if (mode === "garbage") {
    return circuit && `${relayAddr}/p2p-circuit/webrtc/p2p/${node.peerId}`;
  }
  return addrs.find((a) => a.includes("/p2p-circuit/webrtc/"));
}

async function waitForAddress(): Promise<string> {
  const deadline = Date.now() + COMMAND_MS;
  while (Date.now() < deadline) {
    const addr = ownAddress();
    if (addr !== undefined) return addr;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error("no address");
}

/** The direct (`/webrtc`) connection to `peer`, not the relayed one. */
function webrtcConnection(peer: string): Connection {
  const connection = node.getConnections(peerIdFromString(peer)).find((c) =>
    c.remoteAddr.toString().includes("/webrtc") && c.limits === undefined
  );
  if (connection === undefined) throw new Error(`no /webrtc to ${peer}`);
  return connection;
}

async function sendGarbage(addr: string, signal: AbortSignal) {
  const connection = await node.dial(multiaddr(addr), { signal });
  const stream = await connection.newStream(SIGNALING, {
    signal,
    runOnLimitedConnection: true,
  });
  stream.send(GARBAGE);
  return "sent";
}

await runCommands(node, await waitForAddress(), {
  dial: async ([addr], signal) => {
    const connection = await node.dial(multiaddr(addr), { signal });
    return `connected ${connection.remotePeer} ${connection.remoteAddr}`;
  },
  echo: async ([peer, protocol, size, seed], signal) => {
    const stream = await webrtcConnection(peer).newStream(protocol, { signal });
    const data = randomBytes(random(Number(seed)), Number(size));
    return `echoed ${await echoHash(stream, data, signal)}`;
  },
  garbage: ([addr], signal) => sendGarbage(addr, signal),
});
