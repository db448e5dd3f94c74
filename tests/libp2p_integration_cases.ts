/**
 * p2prtc inside js-libp2p (`libp2p/`): a js-libp2p 3.x node in this process
 * whose WebRTC transports are p2prtc's, against plain js-libp2p nodes with
 * `@libp2p/webrtc` in child processes, on loopback.
 *
 * - {@linkcode libp2pDirectCases}: `/webrtc-direct` with the reference peer
 *   (`interop/js_peer.ts`), both ways when the backend can listen.
 * - {@linkcode libp2pWebRTCCases}: `/webrtc` through a js-libp2p circuit
 *   relay (`interop/relay_peer.ts`), each side listening in turn, 10 MiB
 *   echoed byte for byte; garbage on the signalling stream fails the attempt
 *   with a typed error and leaves no peer connection behind.
 *
 * Registered by `native_test.ts` (libdatachannel) and `werift_test.ts`.
 */

import { createHash } from "node:crypto";
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { createLibp2p, type Libp2pOptions } from "libp2p";
import { circuitRelayTransport } from "@libp2p/circuit-relay-v2";
import { identify } from "@libp2p/identify";
import type { Connection, Libp2p, ServiceMap, Stream } from "@libp2p/interface";
import { noise } from "@libp2p/noise";
import { peerIdFromString } from "@libp2p/peer-id";
import { ping } from "@libp2p/ping";
import { tcp } from "@libp2p/tcp";
import { yamux } from "@libp2p/yamux";
import { multiaddr } from "@multiformats/multiaddr";
import type { IceCandidate, PeerConnectionBackend } from "../core/backend.ts";
import { SignalingMessageTooLargeError } from "../core/errors.ts";
import { p2prtcWebRTC, p2prtcWebRTCDirect } from "../libp2p/mod.ts";
import { ChildPeer } from "./interop/child_peer.ts";
import { ECHO, echoHash, serveEcho } from "./interop/peer_support.ts";
import { JsPeer } from "./interop_cases.ts";
import { random, randomBytes } from "./random.ts";

const MIB = 1024 * 1024;
const LOOPBACK = "127.0.0.1";
const loopbackOnly = (c: IceCandidate) => c.candidate.includes(` ${LOOPBACK} `);

type Settle = (backend: PeerConnectionBackend) => Promise<void>;

// js-libp2p's peer store locks peers with `mortice`, which opens one
// BroadcastChannel for the whole process on first use and never closes it.
// Open it here, before any test, so the resource sanitizer does not pin it
// on whichever test happens to be first.
await (async () => {
  const warm = await createLibp2p({ start: false });
  await warm.peerStore.merge(warm.peerId, {});
  await warm.stop();
  // The store's queue reports idle through a 1 ms debounce timer; let it
  // run here rather than in the first test.
  await new Promise((resolve) => setTimeout(resolve, 20));
})();

/** The peer id at the end of a multiaddr. */
function peerIdOf(addr: string): string {
  return addr.slice(addr.lastIndexOf("/p2p/") + 5);
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** {@linkcode echoHash} with a bound of 60 s. */
function echoOver(stream: Stream, data: Uint8Array): Promise<string> {
  return echoHash(stream, data, AbortSignal.timeout(60_000));
}

/** Starts a node in this process; the caller stops it with {@linkcode stop}. */
async function startNode<T extends ServiceMap>(
  options: Libp2pOptions<T>,
): Promise<Libp2p<T>> {
  const node = await createLibp2p<T>({
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: { denyDialMultiaddr: () => false },
    // A /webrtc dial is a relayed dial, signalling and ICE in one: give a
    // loaded machine more than the 6 s per address js-libp2p allows.
    connectionManager: { dialTimeout: 60_000, addressDialTimeout: 60_000 },
    ...options,
  });
  await serveEcho(node);
  return node;
}

/**
 * Stops `node`, at most 10 s: js-libp2p's stop() can hang with WebRTC
 * (js-libp2p#2625). Then the backend must settle with nothing left open.
 */
async function stop(
  node: Libp2p,
  backend: PeerConnectionBackend,
  settle: Settle,
): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    node.stop(),
    new Promise((resolve) => timer = setTimeout(resolve, 10_000)),
  ]);
  clearTimeout(timer);
  // Closing its listeners makes js-libp2p's address manager schedule a
  // debounced update (1 s) that stop() does not cancel; let it run out.
  await new Promise((resolve) => setTimeout(resolve, 1_100));
  await settle(backend);
  deepStrictEqual(
    { ...backend.openHandles(), udpListeners: 0 },
    { peerConnections: 0, dataChannels: 0, udpListeners: 0 },
  );
}

/** Polls `check` every 50 ms until it gives a value, at most `ms`. */
async function eventually<T>(
  check: () => T | undefined,
  what: string,
  ms = 30_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const value = check();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Asserts `connection` is a direct WebRTC one made by p2prtc's muxer. */
function assertWebRTC(connection: Connection, kind: string): void {
  ok(
    connection.remoteAddr.toString().includes(kind),
    `${connection.remoteAddr}`,
  );
  strictEqual(connection.multiplexer, "/webrtc");
  strictEqual(connection.encryption, "native");
  strictEqual(connection.limits, undefined);
}

/**
 * Registers the `/webrtc-direct` cases for a backend: dialing always, and
 * being dialled if `listen` (the backend's `capabilities.directListen`).
 */
export function libp2pDirectCases(
  label: string,
  makeBackend: () => Promise<PeerConnectionBackend>,
  settle: Settle,
  { listen }: { listen: boolean },
): void {
  const test = (name: string, fn: () => Promise<void>) =>
    Deno.test(`libp2p integration (${label}): ${name}`, fn);

  test("a js-libp2p node with p2prtcWebRTCDirect dials the reference peer; echo and ping", async () => {
    const backend = await makeBackend();
    await using peer = await JsPeer.start();
    const node = await startNode({
      transports: [p2prtcWebRTCDirect({ backend, bindAddress: LOOPBACK })],
      services: { identify: identify(), ping: ping() },
    });
    try {
      const connection = await node.dial(multiaddr(peer.addr), {
        signal: AbortSignal.timeout(30_000),
      });
      assertWebRTC(connection, "/webrtc-direct/");
      strictEqual(connection.remotePeer.toString(), peerIdOf(peer.addr));
      const data = randomBytes(random(1), MIB);
      const stream = await connection.newStream(ECHO);
      strictEqual(await echoOver(stream, data), sha256Hex(data));
      ok(await node.services.ping.ping(connection.remotePeer) >= 0);
      // And a stream the peer opens, inbound here.
      await peer.command(`roundtrip ${node.peerId} ${ECHO} from-js`);
      strictEqual(await peer.expect("reply "), "from-js");
    } finally {
      await stop(node, backend, settle);
    }
  });

  if (!listen) return;
  test("the reference peer dials a js-libp2p node listening with p2prtcWebRTCDirect", async () => {
    const backend = await makeBackend();
    await using peer = await JsPeer.start();
    const node = await startNode({
      addresses: { listen: [`/ip4/${LOOPBACK}/udp/0/webrtc-direct`] },
      transports: [p2prtcWebRTCDirect({ backend, bindAddress: LOOPBACK })],
      services: { identify: identify(), ping: ping() },
    });
    try {
      const addr = node.getMultiaddrs().find((ma) =>
        ma.toString().includes("/webrtc-direct/certhash/")
      );
      ok(addr, `no WebRTC-Direct address in ${node.getMultiaddrs()}`);
      await peer.command(`dial ${addr}`);
      strictEqual(await peer.expect("connected "), node.peerId.toString());
      await peer.command(`roundtrip ${node.peerId} ${ECHO} hello-p2prtc`);
      strictEqual(await peer.expect("reply "), "hello-p2prtc");
      const [connection] = node.getConnections(
        peerIdFromString(peerIdOf(peer.addr)),
      );
      assertWebRTC(connection, "/webrtc-direct");
      strictEqual(connection.direction, "inbound");
      // And back over the connection the peer made.
      const data = randomBytes(random(2), MIB);
      strictEqual(
        await echoOver(await connection.newStream(ECHO), data),
        sha256Hex(data),
      );
    } finally {
      await stop(node, backend, settle);
    }
  });
}

/** A relay, and a node in this process that can reach it. */
interface RelayedSetup {
  relay: ChildPeer;
  node: Libp2p;
  /** The node's `/webrtc` address through the relay, if it listens. */
  addr: string;
}

/** The js-libp2p options of a node that reaches peers through `relay`. */
function relayedNode(
  backend: PeerConnectionBackend,
  relay: ChildPeer,
  listen: boolean,
): Libp2pOptions {
  return {
    addresses: {
      listen: listen ? [`${relay.addr}/p2p-circuit`, "/webrtc"] : [],
    },
    transports: [
      tcp(),
      circuitRelayTransport(),
      p2prtcWebRTC({
        backend,
        bindAddress: LOOPBACK,
        candidateFilter: loopbackOnly,
      }),
    ],
    services: { identify: identify() },
  };
}

/** Registers the `/webrtc` cases (through a circuit relay) for a backend. */
export function libp2pWebRTCCases(
  label: string,
  makeBackend: () => Promise<PeerConnectionBackend>,
  settle: Settle,
): void {
  const test = (
    name: string,
    listen: boolean,
    fn: (setup: RelayedSetup, backend: PeerConnectionBackend) => Promise<void>,
  ) =>
    Deno.test(`libp2p integration (${label}): ${name}`, async () => {
      const backend = await makeBackend();
      await using relay = await ChildPeer.start("./relay_peer.ts", ["relay"]);
      const node = await startNode(relayedNode(backend, relay, listen));
      try {
        const addr = listen
          ? await eventually(
            () =>
              node.getMultiaddrs().map(String).find((ma) =>
                ma.includes("/p2p-circuit/webrtc/")
              ),
            "a /webrtc address through the relay",
          )
          : "";
        await fn({ relay, node, addr }, backend);
      } finally {
        await stop(node, backend, settle);
      }
    });

  test(
    "/webrtc through a relay: p2prtc dials a js-libp2p listener; 10 MiB echo",
    false,
    async ({ relay, node }) => {
      await using peer = await ChildPeer.start("./relay_peer.ts", [
        "webrtc",
        relay.addr,
      ]);
      const connection = await node.dial(multiaddr(peer.addr), {
        signal: AbortSignal.timeout(60_000),
      });
      assertWebRTC(connection, "/p2p-circuit/webrtc/");
      strictEqual(connection.direction, "outbound");
      strictEqual(connection.remotePeer.toString(), peer.peerId);
      const data = randomBytes(random(3), 10 * MIB);
      strictEqual(
        await echoOver(await connection.newStream(ECHO), data),
        sha256Hex(data),
      );
    },
  );

  test(
    "/webrtc through a relay: a js-libp2p node dials the p2prtc listener; 10 MiB echo",
    true,
    async ({ relay, node, addr }) => {
      await using peer = await ChildPeer.start("./relay_peer.ts", [
        "webrtc",
        relay.addr,
      ]);
      const [peerId] = (await peer.ask(`dial ${addr}`, "connected ")).split(
        " ",
      );
      strictEqual(peerId, node.peerId.toString());
      const size = 10 * MIB;
      strictEqual(
        await peer.ask(`echo ${node.peerId} ${ECHO} ${size} 4`, "echoed "),
        sha256Hex(randomBytes(random(4), size)),
      );
      const connection = node.getConnections(peerIdFromString(peer.peerId))
        .find((c) => c.limits === undefined);
      ok(connection);
      assertWebRTC(connection, "/webrtc/");
      strictEqual(connection.direction, "inbound");
    },
  );

  test(
    "garbage on the signalling stream fails our dial, typed, and frees the peer connection",
    false,
    async ({ relay, node }, backend) => {
      await using peer = await ChildPeer.start("./relay_peer.ts", [
        "garbage",
        relay.addr,
      ]);
      // The relay's reader refuses the 2 GiB length prefix at once, and
      // js-libp2p's dial passes the error through.
      await rejects(
        node.dial(multiaddr(peer.addr), {
          signal: AbortSignal.timeout(30_000),
        }),
        (error) =>
          error instanceof SignalingMessageTooLargeError &&
          error.code === "ERR_SIGNALING_MESSAGE_TOO_LARGE",
      );
      // Nothing of the attempt is left while the node keeps running.
      await settle(backend);
      deepStrictEqual(backend.openHandles().peerConnections, 0);
    },
  );

  test(
    "garbage on an inbound signalling stream is refused and frees the peer connection",
    true,
    async ({ relay, node }, backend) => {
      await using peer = await ChildPeer.start("./relay_peer.ts", [
        "garbage",
        relay.addr,
      ]);
      const created = trackPeerConnections(backend);
      await peer.ask(
        `garbage ${relay.addr}/p2p-circuit/p2p/${node.peerId}`,
        "sent",
      );
      // The signalling stream arrived, a peer connection was made for it,
      // and the garbage closed it.
      await eventually(
        () => created.count > 0 || undefined,
        "the answer to start",
      );
      await settle(backend);
      deepStrictEqual(backend.openHandles().peerConnections, 0);
    },
  );
}

/**
 * Counts the peer connections `backend` creates from now on (the transport
 * calls the backend's method each time, so replacing it is seen).
 */
function trackPeerConnections(
  backend: PeerConnectionBackend,
): { count: number } {
  const created = { count: 0 };
  const create = backend.createPeerConnection.bind(backend);
  backend.createPeerConnection = (options) => {
    created.count++;
    return create(options);
  };
  return created;
}
