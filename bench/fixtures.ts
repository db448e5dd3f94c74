/**
 * Connections for the bench suites, all on loopback with no ICE server:
 *
 * - {@linkcode rawPair}: two peer connections of one backend, connected by
 *   offer and answer, for raw data channels and for bare streams on them;
 * - {@linkcode p2prtcPair}: two `WebRTCTransport`s with the bench protocols,
 *   connected over WebRTC-Direct (libdatachannel, which can listen) or over
 *   `/webrtc` with in-process signalling (werift, which cannot);
 * - {@linkcode jsPair}: two js-libp2p nodes (`@libp2p/webrtc`'s
 *   `webRTCDirect`), the reference, with the same protocols.
 *
 * Both ends of every pair live in this process. js-libp2p uses
 * node-datachannel too, so a suite that runs it must make its libdatachannel
 * backend with `{ cleanup: false }`: our backend's `cleanup()` would stop
 * js-libp2p's connections as well.
 *
 * @module
 */

import { deepStrictEqual } from "node:assert/strict";
import type {
  DataChannel,
  HandleCount,
  PeerConnection,
  PeerConnectionBackend,
} from "../core/backend.ts";
import type { NegotiatedStream } from "../core/multistream.ts";
import type { StreamHandler, WebRTCConnection } from "../core/connection.ts";
import { generateIdentity, type Identity } from "../core/identity.ts";
import type { WebRTCDirectListener } from "../core/direct_listen.ts";
import { type StreamOptions, WebRTCStream } from "../core/stream.ts";
import { type ListenOptions, WebRTCTransport } from "../core/transport.ts";
import { memorySignalingPair } from "../signaling/memory.ts";
import {
  Closer,
  connect,
  isLoopback,
  whenOpen,
} from "../tests/conformance/connect.ts";
import { readAll } from "../tests/stream_helpers.ts";
import { sleep } from "./common.ts";

/** Reads to the end, then ends its own write side: the writer's "all read". */
export const SINK = "/p2prtc-bench/sink/1.0.0";
/** Sends back every byte it reads, then ends when the peer does. */
export const ECHO = "/p2prtc-bench/echo/1.0.0";

/** The bound on every setup step. */
const SETUP_MS = 60_000;

/** A backend that can say when all it made has stopped. */
export type Settling = PeerConnectionBackend & {
  idle(signal?: AbortSignal): Promise<void>;
};

/** Which end of a {@linkcode RawPair} opens a channel. */
export type Opener = "a" | "b";

/** Two connected peer connections of one backend. */
export interface RawPair {
  /** The offerer. */
  a: PeerConnection;
  /** The answerer. */
  b: PeerConnection;
  /**
   * Opens a fresh data channel from `from` (default `a`); resolves with the
   * opener's end and the peer's, both open.
   */
  channels(from?: Opener): Promise<[DataChannel, DataChannel]>;
  /** Opens a fresh channel and wraps both ends as streams, opener's first. */
  streams(
    options?: StreamOptions,
    from?: Opener,
  ): Promise<[WebRTCStream, WebRTCStream]>;
  /** Closes both peer connections (the backend reports it a moment later). */
  close(): void;
}

/**
 * Hands each inbound channel of `pc` to whoever waits for its SCTP stream
 * id, the same id as the opener's end, so concurrent opens pair up right.
 */
function inboundById(pc: PeerConnection): (id: number) => Promise<DataChannel> {
  const arrived = new Map<number, DataChannel>();
  const waiting = new Map<number, (channel: DataChannel) => void>();
  pc.ondatachannel = (channel) => {
    const id = channel.id ?? -1;
    const waiter = waiting.get(id);
    if (waiter === undefined) arrived.set(id, channel);
    else {
      waiting.delete(id);
      waiter(channel);
    }
  };
  return (id) => {
    const channel = arrived.get(id);
    if (channel !== undefined) {
      arrived.delete(id);
      return Promise.resolve(channel);
    }
    return new Promise((resolve) => waiting.set(id, resolve));
  };
}

/** The SCTP stream id of a channel just created on a connected pair. */
function idOf(channel: DataChannel): number {
  if (channel.id === null) {
    throw new Error("the backend gave the new channel no stream id");
  }
  return channel.id;
}

/** Connects two peer connections of `backend` on loopback. */
export async function rawPair(backend: Settling): Promise<RawPair> {
  const closer = new Closer();
  const { a, b } = await connect(backend, backend, closer, {
    signal: AbortSignal.timeout(SETUP_MS),
  });
  const atA = inboundById(a);
  const atB = inboundById(b);
  const ends = (from: Opener) =>
    from === "a" ? { opener: a, peer: atB } : { opener: b, peer: atA };
  return {
    a,
    b,
    async channels(from = "a") {
      const { opener, peer } = ends(from);
      const mine = opener.createDataChannel("");
      const theirs = await peer(idOf(mine));
      const signal = AbortSignal.timeout(SETUP_MS);
      await whenOpen(mine, signal);
      await whenOpen(theirs, signal);
      return [mine, theirs];
    },
    async streams(options, from = "a") {
      const { opener, peer } = ends(from);
      // Wrapped before the opener's channel opens, as a connection does.
      const mine = opener.createDataChannel("");
      const stream = new WebRTCStream(mine, options);
      return [stream, new WebRTCStream(await peer(idOf(mine)), options)];
    },
    close() {
      closer.closeAll();
    },
  };
}

/** The handlers both p2prtc transports serve. */
const p2prtcHandlers: [string, StreamHandler][] = [
  [SINK, async (stream) => {
    await readAll(stream.readable);
    await stream.closeWrite();
  }],
  [ECHO, async (stream) => {
    await stream.readable.pipeTo(stream.writable);
  }],
];

/** Two p2prtc transports and one connection between them. */
export interface P2prtcPair {
  /** The dialling transport. */
  dialer: WebRTCTransport;
  /** The listening transport. */
  listener: WebRTCTransport;
  /** The dialer's connection to the listener. */
  connection: WebRTCConnection;
  /** The listener's end of the same connection. */
  peer: WebRTCConnection;
  /** The listener's WebRTC-Direct address (libdatachannel only). */
  addr?: string;
  /**
   * Closes every connection and the listener. The backend's handles go a
   * moment later: wait for its `idle()`, or for its count, as needed.
   */
  close(): Promise<void>;
}

/** A transport with the bench protocols and a fresh identity. */
export async function benchTransport(
  backend: PeerConnectionBackend,
  streamOptions?: StreamOptions,
  identity?: Identity,
): Promise<WebRTCTransport> {
  const transport = new WebRTCTransport({
    backend,
    identity: identity ?? await generateIdentity(),
    bindAddress: "127.0.0.1",
    streamOptions,
  });
  for (const [protocol, handler] of p2prtcHandlers) {
    transport.handle(protocol, handler);
  }
  return transport;
}

/** Listens on 127.0.0.1 with every accepted connection kept open. */
export function listenLoopback(
  transport: WebRTCTransport,
  options: Omit<ListenOptions, "onConnection"> = {},
): Promise<WebRTCDirectListener> {
  return transport.listen("/ip4/127.0.0.1/udp/0/webrtc-direct", {
    ...options,
    // Tracked by the transport; the accept queue would drop past 32.
    onConnection: () => {},
  });
}

/**
 * Connects two p2prtc transports of `backend`: over WebRTC-Direct when it
 * can listen, otherwise over `/webrtc` with in-process signalling.
 */
export async function p2prtcPair(
  backend: Settling,
  streamOptions?: StreamOptions,
): Promise<P2prtcPair> {
  const dialerId = await generateIdentity();
  const listenerId = await generateIdentity();
  const dialer = await benchTransport(backend, streamOptions, dialerId);
  const listener = await benchTransport(backend, streamOptions, listenerId);
  const closeBoth = async (listening?: WebRTCDirectListener) => {
    await dialer[Symbol.asyncDispose]();
    await listener[Symbol.asyncDispose]();
    listening?.close();
  };
  if (backend.capabilities.directListen) {
    const listening = await listenLoopback(listener);
    const connection = await dialer.dial(listening.addr, { timeout: SETUP_MS });
    return {
      dialer,
      listener,
      connection,
      peer: await onlyConnection(listener),
      addr: listening.addr,
      close: () => closeBoth(listening),
    };
  }
  const [ends, endl] = memorySignalingPair();
  const signal = AbortSignal.timeout(SETUP_MS);
  const [connection, peer] = await Promise.all([
    dialer.connect(ends, {
      role: "offerer",
      remotePeer: listenerId.peerId,
      candidateFilter: isLoopback,
      signal,
    }),
    listener.connect(endl, {
      role: "answerer",
      remotePeer: dialerId.peerId,
      candidateFilter: isLoopback,
      signal,
    }),
  ]);
  return { dialer, listener, connection, peer, close: () => closeBoth() };
}

/**
 * The one connection of `transport`, once it has it: a listener adopts its
 * end when the dialer's last Noise message arrives, a moment after the
 * dialer's `dial` resolved.
 */
async function onlyConnection(
  transport: WebRTCTransport,
): Promise<WebRTCConnection> {
  for (let i = 0; i < 6000; i++) {
    const [connection] = transport.connections;
    if (connection !== undefined) return connection;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error("the listener never adopted the connection");
}

/**
 * Waits (bounded: 10 s) until `backend` has exactly the peer connections and
 * data channels of `expected` open; throws if it does not get there.
 */
export async function settle(
  backend: Settling,
  expected: HandleCount,
): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    const now = backend.openHandles();
    if (
      now.peerConnections === expected.peerConnections &&
      now.dataChannels === expected.dataChannels
    ) return;
    await sleep(5);
  }
  deepStrictEqual(backend.openHandles(), expected, "handles left open");
}

/** Runs `make` for 0..count-1, at most `wave` at a time. */
export async function inWaves<T>(
  count: number,
  wave: number,
  make: (i: number) => Promise<T>,
): Promise<T[]> {
  const out: T[] = [];
  for (let start = 0; start < count; start += wave) {
    const batch = [];
    for (let i = start; i < Math.min(count, start + wave); i++) {
      batch.push(make(i));
    }
    out.push(...await Promise.all(batch));
  }
  return out;
}

/** Ends an echo stream: FIN, then the echo's own end. */
export async function closeEcho(stream: NegotiatedStream): Promise<void> {
  await stream.closeWrite();
  for await (const _ of stream.readable) {
    // Nothing was sent, so nothing comes back.
  }
  await stream.closed;
}

/** The slice of a js-libp2p 3 stream the suites use. */
export interface JsStream extends AsyncIterable<{ subarray(): Uint8Array }> {
  send(data: Uint8Array): boolean;
  onDrain(options?: { signal?: AbortSignal }): Promise<void>;
  close(options?: { signal?: AbortSignal }): Promise<void>;
  abort(error: Error): void;
}

/** The slice of a js-libp2p 3 node the suites use. */
export interface JsNode {
  dial(
    addr: unknown,
    options?: { signal?: AbortSignal },
  ): Promise<JsConnection>;
  dialProtocol(
    addr: unknown,
    protocol: string,
    options?: { signal?: AbortSignal },
  ): Promise<JsStream>;
  hangUp(addr: unknown): Promise<void>;
  getConnections(): JsConnection[];
  getMultiaddrs(): { toString(): string }[];
  stop(): Promise<void>;
}

/** The slice of a js-libp2p 3 connection the suites use. */
export interface JsConnection {
  newStream(
    protocol: string,
    options?: { signal?: AbortSignal },
  ): Promise<JsStream>;
  close(): Promise<void>;
  remotePeer: unknown;
}

/** Two js-libp2p nodes, one listening; `addr` is its WebRTC-Direct address. */
export interface JsPair {
  /** The dialling node. */
  dialer: JsNode;
  /** The listening node. */
  listener: JsNode;
  /** The listener's WebRTC-Direct multiaddr (a js-libp2p `Multiaddr`). */
  addr: unknown;
  /** Stops both nodes (bounded: js-libp2p's stop can hang, js-libp2p#2625). */
  close(): Promise<void>;
}

/** Reads a js-libp2p stream to its end; returns the byte count. */
export async function jsDrain(stream: JsStream): Promise<number> {
  let length = 0;
  for await (const chunk of stream) length += chunk.subarray().length;
  return length;
}

/** Writes `data` in `chunk`-byte sends, waiting on drain as js-libp2p asks. */
export async function jsWrite(
  stream: JsStream,
  data: Uint8Array,
  chunk: number,
): Promise<void> {
  for (let at = 0; at < data.length; at += chunk) {
    if (!stream.send(data.subarray(at, at + chunk))) await stream.onDrain();
  }
}

async function jsNode(listen: boolean): Promise<JsNode> {
  const { createLibp2p } = await import("libp2p");
  const { webRTCDirect } = await import("@libp2p/webrtc");
  const node = await createLibp2p({
    addresses: {
      listen: listen ? ["/ip4/127.0.0.1/udp/0/webrtc-direct"] : [],
    },
    transports: [webRTCDirect({ rtcConfiguration: { iceServers: [] } })],
    connectionGater: { denyDialMultiaddr: () => false },
    // Defaults made for the open internet (5 inbound connections a second
    // per host, 10 upgrading at once) would throttle a loopback benchmark.
    connectionManager: {
      inboundConnectionThreshold: Infinity,
      maxIncomingPendingConnections: 1024,
      maxConnections: 2048,
    },
  });
  const limits = { maxInboundStreams: 2048, maxOutboundStreams: 2048 };
  await node.handle(SINK, async (stream) => {
    await jsDrain(stream as unknown as JsStream);
    await stream.close();
  }, limits);
  await node.handle(ECHO, async (stream) => {
    for await (const chunk of stream) {
      if (!stream.send(chunk)) await stream.onDrain();
    }
    await stream.close();
  }, limits);
  return node as unknown as JsNode;
}

/**
 * Dials the listener of `pair` from its dialer and opens a stream of
 * `protocol`, trying up to `attempts` times. js-libp2p's dialer, run under
 * Deno on loopback, now and then stalls in its handshake until the 6 s
 * address timeout (both against js-libp2p and against p2prtc listeners);
 * `onFailure` hears of each such attempt.
 */
export async function jsDialProtocol(
  pair: JsPair,
  protocol: string,
  onFailure?: (error: unknown) => void,
  attempts = 3,
): Promise<JsStream> {
  for (let attempt = 1;; attempt++) {
    try {
      return await pair.dialer.dialProtocol(pair.addr, protocol, {
        signal: AbortSignal.timeout(SETUP_MS),
      });
    } catch (error) {
      onFailure?.(error);
      if (attempt >= attempts) throw error;
    }
  }
}

/** Starts two js-libp2p nodes on loopback; the dialer has not dialled yet. */
export async function jsPair(): Promise<JsPair> {
  const listener = await jsNode(true);
  const dialer = await jsNode(false);
  const addr = listener.getMultiaddrs().find((ma) =>
    ma.toString().includes("/webrtc-direct/")
  );
  const stop = (node: JsNode) =>
    Promise.race([node.stop(), new Promise((r) => setTimeout(r, 2000))]);
  return {
    dialer,
    listener,
    addr,
    async close() {
      await stop(dialer);
      await stop(listener);
    },
  };
}
