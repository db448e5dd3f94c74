/**
 * Interop with js-libp2p over WebRTC-Direct, with a js-libp2p 3.x node
 * (`@libp2p/webrtc`) running in another process on loopback: p2prtc dials it
 * ({@linkcode interopCases}, registered by the backend test files that can
 * dial), and it dials a p2prtc listener ({@linkcode interopListenCases}, by
 * those whose backend can listen).
 */

import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import type { PeerConnectionBackend } from "../core/backend.ts";
import type { StreamHandler, WebRTCConnection } from "../core/connection.ts";
import { dialDirect } from "../core/direct_dial.ts";
import { ConnectionFailedError, PeerIdMismatchError } from "../core/errors.ts";
import { generateIdentity, type Identity } from "../core/identity.ts";
import { ping, PING_PROTOCOL } from "../core/ping.ts";
import { AGENT_VERSION, WebRTCTransport } from "../core/transport.ts";
import type { StreamOptions } from "../core/stream.ts";
import { ChildPeer } from "./interop/child_peer.ts";
import { ECHO, sha256Hex } from "./interop/peer_support.ts";
import { random, randomBytes } from "./random.ts";
import { echoOnce, readAll, writeAndClose } from "./stream_helpers.ts";

/** Served by p2prtc in the half-close cases: see {@linkcode replyAtEnd}. */
const REPLY = "/reply/1.0.0";

/**
 * Reads the request to its end (the peer's FIN), then answers `got
 * <request>`: a reply the peer can only read after closing its write side.
 */
const replyAtEnd: StreamHandler = async (stream) => {
  const request = new TextDecoder().decode(await readAll(stream.readable));
  await writeAndClose(stream, new TextEncoder().encode(`got ${request}`));
};

/** The js-libp2p reference peer (`interop/js_peer.ts`) in a child process. */
export type JsPeer = ChildPeer;

/** Starts {@linkcode JsPeer}s. */
export const JsPeer = {
  /**
   * Starts the reference peer and waits (bounded) for its address. A peer
   * that exits before listening is started once more: js-libp2p finds a
   * free UDP port and binds it in two steps, and a process running beside
   * us can take the port in between ("Failed to register ICE UDP mux
   * listener").
   */
  start: (): Promise<JsPeer> =>
    ChildPeer.start("./js_peer.ts", [], { attempts: 2 }),
};

/** Registers the js-libp2p interop cases for a dialing backend. */
export function interopCases(
  label: string,
  makeBackend: () => Promise<PeerConnectionBackend>,
  settle: (backend: PeerConnectionBackend) => Promise<void>,
): void {
  const test = (
    name: string,
    fn: (
      conn: WebRTCConnection,
      peer: JsPeer,
      identity: Identity,
    ) => Promise<void>,
  ) =>
    Deno.test(`interop js-libp2p (${label}): ${name}`, async () => {
      const backend = await makeBackend();
      await using peer = await JsPeer.start();
      const identity = await generateIdentity();
      const transport = new WebRTCTransport({
        backend,
        identity,
        bindAddress: "127.0.0.1",
      });
      const conn = await transport.dial(peer.addr);
      try {
        await fn(conn, peer, identity);
      } finally {
        await transport[Symbol.asyncDispose]();
        await settle(backend);
      }
    });

  test(
    "p2prtc dials js-libp2p: the peer id is proven, ping answers",
    async (conn, peer) => {
      strictEqual(conn.remotePeer.toString(), peer.peerId);
      const stream = await conn.newStream(PING_PROTOCOL);
      for (let i = 0; i < 3; i++) ok((await ping(stream)) >= 0);
      await stream.close();
    },
  );

  test(
    "identify: js-libp2p learns who we are and keeps the connection",
    async (conn, peer, identity) => {
      // js runs identify as soon as it is connected; give it a moment.
      for (let i = 0; i < 50; i++) {
        // Until js has stored us, the lookup answers "error Not Found".
        const agent = await peer.ask(`agent ${identity.peerId}`, "agent ")
          .catch(() => "");
        if (agent === AGENT_VERSION) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      strictEqual(
        await peer.ask(`agent ${identity.peerId}`, "agent "),
        AGENT_VERSION,
      );
      strictEqual(conn.isClosed, false);
    },
  );

  test("echo of 10 MiB is byte-exact", async (conn) => {
    await echoOnce(conn, randomBytes(random(10), 10 * 1024 * 1024), ECHO);
  });

  test("64 concurrent streams each echo their own bytes", async (conn) => {
    await Promise.all(
      Array.from(
        { length: 64 },
        (_, i) =>
          echoOnce(conn, randomBytes(random(100 + i), 64 * 1024 + i), ECHO),
      ),
    );
  });

  test(
    "half-close: js closes its write side and still reads our reply",
    async (conn, peer, identity) => {
      conn.handle(REPLY, replyAtEnd);
      strictEqual(
        await peer.ask(
          `request ${identity.peerId} ${REPLY} hello-js`,
          "reply ",
        ),
        "got hello-js",
      );
    },
  );
}

/** Registers the dial failures against a js-libp2p listener. */
export function interopFailureCases(
  label: string,
  makeBackend: () => Promise<PeerConnectionBackend>,
  settle: (backend: PeerConnectionBackend) => Promise<void>,
): void {
  Deno.test(`interop js-libp2p (${label}): a wrong certhash fails in DTLS, a wrong peer id in Noise`, async () => {
    const backend = await makeBackend();
    await using peer = await JsPeer.start();
    const identity = await generateIdentity();
    const options = {
      backend,
      identity,
      bindAddress: "127.0.0.1",
      timeout: 10_000,
    };
    try {
      // Same listener, another certificate's hash.
      const wrongHash = peer.addr.replace(
        /\/certhash\/[^/]+/,
        "/certhash/uEiAw_J9GnCB0Gd_dCqtfJ6hslzyU5AVI25N1zKLpFZc7mQ",
      );
      await rejects(dialDirect(wrongHash, options), ConnectionFailedError);

      const other = await generateIdentity();
      const wrongPeer = peer.addr.replace(/\/p2p\/.+$/, `/p2p/${other.peerId}`);
      await rejects(dialDirect(wrongPeer, options), PeerIdMismatchError);
    } finally {
      await settle(backend);
    }
  });
}

/**
 * Has the js peer dial `addr`; resolves with the peer id it connected to.
 * No retry: a dial js loses (its first Noise message dropped, see the
 * listener's `noiseStartDelay`) must fail the test.
 */
async function jsDials(peer: JsPeer, addr: string): Promise<string> {
  return (await peer.ask(`dial ${addr}`, "connected ")).trim();
}

/**
 * Registers the cases where js-libp2p dials a p2prtc WebRTC-Direct listener
 * on `backend` (one that can listen) and drives the connection: a 10 MiB
 * echo, ping, 64 concurrent streams, half-close, and a stream our side opens
 * back over the same inbound connection. Each case ends with the backend's
 * handle count at zero.
 */
export function interopListenCases(
  label: string,
  makeBackend: () => Promise<PeerConnectionBackend>,
  settle: (backend: PeerConnectionBackend) => Promise<void>,
): void {
  const test = (
    name: string,
    fn: (
      inbound: WebRTCConnection,
      peer: JsPeer,
      server: WebRTCTransport,
    ) => Promise<void>,
    streamOptions?: StreamOptions,
  ) =>
    Deno.test(`interop js-libp2p dials (${label}): ${name}`, async () => {
      const backend = await makeBackend();
      const server = new WebRTCTransport({
        backend,
        identity: await generateIdentity(),
        streamOptions,
      });
      server.handle(ECHO, (stream) => stream.readable.pipeTo(stream.writable));
      server.handle(REPLY, replyAtEnd);
      const listener = await server.listen(
        "/ip4/127.0.0.1/udp/0/webrtc-direct",
      );
      // Rejects when the listener closes, if js never got through.
      const accepted = listener.accept();
      accepted.catch(() => {});
      try {
        await using peer = await JsPeer.start();
        strictEqual(
          await jsDials(peer, listener.addr),
          server.identity.peerId.toString(),
        );
        const inbound = await accepted;
        strictEqual(inbound.direction, "inbound");
        strictEqual(inbound.remotePeer.toString(), peer.peerId);
        await fn(inbound, peer, server);
      } finally {
        await server[Symbol.asyncDispose]();
        await listener[Symbol.asyncDispose]();
        await settle(backend);
      }
      const { peerConnections, dataChannels, udpListeners = 0 } = backend
        .openHandles();
      deepStrictEqual({ peerConnections, dataChannels, udpListeners }, {
        peerConnections: 0,
        dataChannels: 0,
        udpListeners: 0,
      });
    });

  /** Has js echo `count` seeded streams of `size` bytes through us at once. */
  const echoThroughUs = async (
    peer: JsPeer,
    server: WebRTCTransport,
    count: number,
    size: number,
    seed: number,
  ) => {
    const [ms, digests] = (await peer.ask(
      `echo ${server.identity.peerId} ${ECHO} ${count} ${size} ${seed}`,
      "echoed ",
    )).split(" ");
    deepStrictEqual(
      digests.split(","),
      Array.from(
        { length: count },
        (_, i) => sha256Hex(randomBytes(random(seed + i), size)),
      ),
    );
    return Number(ms);
  };

  test(
    "js echoes 10 MiB through our listener, byte-exact",
    async (_inbound, peer, server) => {
      const size = 10 * 1024 * 1024;
      const ms = await echoThroughUs(peer, server, 1, size, 10);
      console.log(
        `js → p2prtc → js, 10 MiB echo: ${ms.toFixed(0)} ms, ` +
          `${(size / 1024 / 1024 / (ms / 1000)).toFixed(1)} MiB/s each way`,
      );
    },
    // An echo holds what it has read and not yet sent back, and data
    // channels have no read backpressure: js sends as fast as it can, and on
    // a busy machine our return path lagged past the default 4 MiB bound (1
    // run in 15), which resets the stream (RESOURCE_LIMIT_EXCEEDED). Room
    // for the whole transfer keeps this case about bytes, not scheduling.
    { maxReadBufferSize: 12 * 1024 * 1024 },
  );

  test("js pings us and gets an RTT", async (_inbound, peer, server) => {
    const rtts: number[] = [];
    for (let i = 0; i < 5; i++) {
      const rtt = Number(
        await peer.ask(`ping ${server.identity.peerId}`, "pong "),
      );
      ok(Number.isFinite(rtt) && rtt >= 0, `rtt ${rtt}`);
      rtts.push(rtt);
    }
    console.log(`js → p2prtc ping RTT (ms, js's whole-ms clock): ${rtts}`);
  });

  test(
    "64 concurrent streams from js each echo their own bytes",
    async (_inbound, peer, server) => {
      const ms = await echoThroughUs(peer, server, 64, 64 * 1024 + 7, 100);
      console.log(`js → p2prtc → js, 64 streams × 64 KiB: ${ms.toFixed(0)} ms`);
    },
  );

  test(
    "half-close: js closes its write side and still reads our reply",
    async (_inbound, peer, server) => {
      strictEqual(
        await peer.ask(
          `roundtrip ${server.identity.peerId} ${REPLY} hello-listener`,
          "reply ",
        ),
        "got hello-listener",
      );
    },
  );

  test(
    "our listener opens a stream back to js over the inbound connection",
    async (inbound) => {
      await echoOnce(inbound, randomBytes(random(7), 1024 * 1024), ECHO);
    },
  );
}
