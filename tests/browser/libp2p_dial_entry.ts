/**
 * A browser test page that runs js-libp2p (`libp2p` 3, `@libp2p/webrtc`'s
 * `webRTCDirect()`, `@libp2p/identify`, `@libp2p/ping`, versions pinned in
 * `deno.json`) and dials a p2prtc WebRTC-Direct listener in the Deno test
 * process: it pings it, waits for identify, and echoes bytes on
 * `/echo/1.0.0`, checking them byte for byte in the page.
 *
 * `deno bundle --platform=browser` bundles js-libp2p as it is: it follows
 * the packages' `browser` fields, so `@libp2p/webrtc` comes in with its
 * browser transport over the page's `RTCPeerConnection`, and nothing of
 * node-datachannel. js-libp2p's dialer writes its ICE credentials into the
 * SDP, which Chromium 156 allows.
 *
 * Unlike the p2prtc page, nothing filters the page's candidates here: a
 * WebRTC-Direct dialer sends none (there is no signalling), and its checks
 * all go to the listener's 127.0.0.1 address.
 *
 * The page's `RTCPeerConnection` is replaced by a subclass that counts the
 * ones not yet closed, so the test can see js-libp2p let go of them.
 *
 * It is bundled for the browser at test time (`bundle.ts`); it is not
 * shipped.
 *
 * @module
 */

import { createLibp2p } from "libp2p";
import { webRTCDirect } from "@libp2p/webrtc";
import { identify } from "@libp2p/identify";
import { ping } from "@libp2p/ping";
import type { IdentifyResult } from "@libp2p/interface";
import { multiaddr } from "@multiformats/multiaddr";
import { random, randomBytes } from "../random.ts";
import {
  type DialEchoPageApi,
  type DialEchoResult,
  echoChecked,
} from "./page_echo.ts";

/**
 * What the test process can ask of this page. Its `dialEcho` also waits
 * for identify and reports the listener's agent version.
 */
export interface Libp2pDialPageApi extends DialEchoPageApi {
  /**
   * Stops the node (at most `timeoutMs`: js-libp2p's `stop()` can hang
   * with WebRTC, js-libp2p#2625) and returns how many of the page's peer
   * connections are still open, and how many connections the node has.
   */
  stop(
    timeoutMs: number,
  ): Promise<{ peerConnections: number; connections: number }>;
}

const ECHO = "/echo/1.0.0";
/** js-libp2p frames what it is given; hand it the data in slices. */
const SLICE = 64 * 1024;

// Deno's type library has no WebRTC types; this is the little used here.
type PeerConnectionClass = new (configuration?: unknown) => { close(): void };
const globals = globalThis as unknown as {
  RTCPeerConnection: PeerConnectionClass;
};

// Set before js-libp2p makes any: it reads the global at each dial. The
// static `generateCertificate` it also calls is inherited.
let openPeerConnections = 0;
class CountedPeerConnection extends globals.RTCPeerConnection {
  #closed = false;
  constructor(configuration?: unknown) {
    super(configuration);
    openPeerConnections++;
  }
  override close(): void {
    if (!this.#closed) {
      this.#closed = true;
      openPeerConnections--;
    }
    super.close();
  }
}
globals.RTCPeerConnection = CountedPeerConnection;

const node = await createLibp2p({
  transports: [webRTCDirect({ rtcConfiguration: { iceServers: [] } })],
  services: { identify: identify(), ping: ping() },
  // The listener is on loopback, which js-libp2p refuses to dial by default.
  connectionGater: { denyDialMultiaddr: () => false },
});

/** Resolves with the agent version once `peer` has been identified. */
function identified(peer: string, signal: AbortSignal): Promise<string> {
  const { promise, resolve, reject } = Promise.withResolvers<string>();
  const onIdentify = (event: CustomEvent<IdentifyResult>) => {
    if (event.detail.peerId.toString() !== peer) return;
    done();
    resolve(event.detail.agentVersion ?? "");
  };
  const onAbort = () => {
    done();
    reject(signal.reason);
  };
  const done = () => {
    node.removeEventListener("peer:identify", onIdentify);
    signal.removeEventListener("abort", onAbort);
  };
  node.addEventListener("peer:identify", onIdentify);
  signal.addEventListener("abort", onAbort, { once: true });
  return promise;
}

/** The chunks of a js-libp2p stream as plain byte arrays. */
async function* bytesOf(
  stream: AsyncIterable<Uint8Array | { subarray(): Uint8Array }>,
): AsyncGenerator<Uint8Array> {
  for await (const chunk of stream) {
    yield chunk instanceof Uint8Array ? chunk : chunk.subarray();
  }
}

async function dialEcho(
  addr: string,
  size: number,
  seed: number,
  timeoutMs: number,
): Promise<DialEchoResult> {
  const signal = AbortSignal.timeout(timeoutMs);
  const target = multiaddr(addr);
  const expected = addr.slice(addr.lastIndexOf("/p2p/") + "/p2p/".length);
  // Listening first: identify runs as soon as the connection is up.
  const agent = identified(expected, signal);
  agent.catch(() => {});
  const dialStarted = performance.now();
  const conn = await node.dial(target, { signal });
  const dialMs = performance.now() - dialStarted;
  const pingMs = await node.services.ping.ping(target, { signal });
  const agentVersion = await agent;

  const stream = await conn.newStream(ECHO, { signal });
  const data = randomBytes(random(seed), size);
  const echoMs = await echoChecked(
    data,
    async (bytes) => {
      for (let at = 0; at < bytes.byteLength; at += SLICE) {
        if (!stream.send(bytes.subarray(at, at + SLICE))) {
          await stream.onDrain({ signal });
        }
      }
      // Ends our write side (FIN); the echo goes on arriving.
      await stream.close({ signal });
    },
    bytesOf(stream),
    signal,
  );
  return {
    remotePeer: conn.remotePeer.toString(),
    dialMs,
    pingMs,
    echoMs,
    bytes: size,
    agentVersion,
  };
}

const api: Libp2pDialPageApi = {
  peerId: () => node.peerId.toString(),
  dialEcho,
  async stop(timeoutMs) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      node.stop(),
      new Promise((resolve) => timer = setTimeout(resolve, timeoutMs)),
    ]);
    clearTimeout(timer);
    return {
      peerConnections: openPeerConnections,
      connections: node.getConnections().length,
    };
  },
};

(globalThis as { p2prtcPage?: Libp2pDialPageApi }).p2prtcPage = api;
