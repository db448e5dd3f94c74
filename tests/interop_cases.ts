/**
 * Interop with js-libp2p over WebRTC-Direct, with a js-libp2p 3.x node
 * (`@libp2p/webrtc`) running in another process on loopback: p2prtc dials it
 * ({@linkcode interopCases}, registered by the backend test files that can
 * dial), and it dials a p2prtc listener ({@linkcode interopListenCases}, by
 * those whose backend can listen).
 */

import { createHash } from "node:crypto";
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import type { PeerConnectionBackend } from "../core/backend.ts";
import type { StreamHandler, WebRTCConnection } from "../core/connection.ts";
import { dialDirect } from "../core/direct_dial.ts";
import {
  ConnectionFailedError,
  PeerIdMismatchError,
  TimeoutError,
} from "../core/errors.ts";
import { generateIdentity, type Identity } from "../core/identity.ts";
import { ping, PING_PROTOCOL } from "../core/ping.ts";
import { AGENT_VERSION, WebRTCTransport } from "../core/transport.ts";
import type { StreamOptions } from "../core/stream.ts";
import { random, randomBytes } from "./random.ts";
import { assertBytes, readAll } from "./stream_helpers.ts";

const ECHO = "/echo/1.0.0";
/** Served by p2prtc in the half-close cases: see {@linkcode replyAtEnd}. */
const REPLY = "/reply/1.0.0";

/**
 * Reads the request to its end (the peer's FIN), then answers `got
 * <request>`: a reply the peer can only read after closing its write side.
 */
const replyAtEnd: StreamHandler = async (stream) => {
  const request = new TextDecoder().decode(await readAll(stream.readable));
  const writer = stream.writable.getWriter();
  await writer.write(new TextEncoder().encode(`got ${request}`));
  await writer.close();
};

/** What js_peer.ts's `echo` prints for each stream: SHA-256, in hex. */
function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** A js-libp2p peer in a child process, and its line-based control channel. */
export class JsPeer implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #lines: ReadableStreamDefaultReader<string>;
  #buffer = "";
  /** Whether its stdout has ended (the process exited). */
  #ended = false;
  /** The peer's WebRTC-Direct multiaddr, with certhash and peer id. */
  addr = "";

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.#lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  }

  /**
   * Starts the peer and waits (bounded) for its address. A peer that exits
   * before listening is started once more: js-libp2p finds a free UDP port
   * and binds it in two steps, and a process running beside us can take the
   * port in between ("Failed to register ICE UDP mux listener").
   */
  static async start(): Promise<JsPeer> {
    for (let attempt = 1;; attempt++) {
      const peer = new JsPeer(
        new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "--quiet",
            "-A",
            new URL("./interop/js_peer.ts", import.meta.url).pathname,
          ],
          stdin: "piped",
          stdout: "piped",
          stderr: "inherit",
        }).spawn(),
      );
      try {
        peer.addr = (await peer.expect("listening", 60_000)).trim();
        return peer;
      } catch (error) {
        await peer[Symbol.asyncDispose]();
        if (attempt >= 2 || !peer.#ended) throw error;
      }
    }
  }

  /** Reads stdout until a line starting with `prefix`; returns its rest. */
  async expect(prefix: string, ms = 20_000): Promise<string> {
    const deadline = AbortSignal.timeout(ms);
    while (!deadline.aborted) {
      const end = this.#buffer.indexOf("\n");
      if (end >= 0) {
        const line = this.#buffer.slice(0, end);
        this.#buffer = this.#buffer.slice(end + 1);
        if (line.startsWith(prefix)) return line.slice(prefix.length);
        if (line.startsWith("error ")) throw new Error(line);
        continue;
      }
      const timer = Promise.withResolvers<never>();
      const onAbort = () => timer.reject(new TimeoutError(`no "${prefix}"`));
      deadline.addEventListener("abort", onAbort, { once: true });
      try {
        const { value, done } = await Promise.race([
          this.#lines.read(),
          timer.promise,
        ]);
        if (done) {
          this.#ended = true;
          break;
        }
        this.#buffer += value;
      } finally {
        deadline.removeEventListener("abort", onAbort);
      }
    }
    throw new TimeoutError(`the js peer never printed "${prefix}"`);
  }

  /** Sends one command line. */
  async command(line: string): Promise<void> {
    const writer = this.#child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(`${line}\n`));
    writer.releaseLock();
  }

  /** Stops the peer (it exits when its stdin closes) and waits for it. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.#child.stdin.close().catch(() => {});
    await this.#lines.cancel().catch(() => {});
    await this.#child.status;
  }
}

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
      strictEqual(
        `/p2p/${conn.remotePeer}`,
        peer.addr.slice(peer.addr.lastIndexOf("/p2p/")),
      );
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
        await peer.command(`agent ${identity.peerId}`);
        // Until js has stored us, the lookup answers "error Not Found".
        const agent = await peer.expect("agent ").catch(() => "");
        if (agent === AGENT_VERSION) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await peer.command(`agent ${identity.peerId}`);
      strictEqual(await peer.expect("agent "), AGENT_VERSION);
      strictEqual(conn.isClosed, false);
    },
  );

  test("echo of 10 MiB is byte-exact", async (conn) => {
    const echo = await conn.newStream(ECHO);
    const data = randomBytes(random(10), 10 * 1024 * 1024);
    const writer = echo.writable.getWriter();
    const [received] = await Promise.all([
      readAll(echo.readable),
      writer.write(data).then(() => writer.close()),
    ]);
    assertBytes(received, data);
  });

  test("64 concurrent streams each echo their own bytes", async (conn) => {
    await Promise.all(Array.from({ length: 64 }, async (_, i) => {
      const echo = await conn.newStream(ECHO);
      const data = randomBytes(random(100 + i), 64 * 1024 + i);
      const writer = echo.writable.getWriter();
      const [received] = await Promise.all([
        readAll(echo.readable),
        writer.write(data).then(() => writer.close()),
      ]);
      assertBytes(received, data);
    }));
  });

  test(
    "half-close: js closes its write side and still reads our reply",
    async (conn, peer, identity) => {
      conn.handle(REPLY, replyAtEnd);
      await peer.command(`request ${identity.peerId} ${REPLY} hello-js`);
      strictEqual(await peer.expect("reply "), "got hello-js");
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
  await peer.command(`dial ${addr}`);
  return (await peer.expect("connected ")).trim();
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
        strictEqual(
          `/p2p/${inbound.remotePeer}`,
          peer.addr.slice(peer.addr.lastIndexOf("/p2p/")),
        );
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
    await peer.command(
      `echo ${server.identity.peerId} ${ECHO} ${count} ${size} ${seed}`,
    );
    const [ms, digests] = (await peer.expect("echoed ", 120_000)).split(" ");
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
      await peer.command(`ping ${server.identity.peerId}`);
      const rtt = Number(await peer.expect("pong "));
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
      await peer.command(
        `roundtrip ${server.identity.peerId} ${REPLY} hello-listener`,
      );
      strictEqual(await peer.expect("reply "), "got hello-listener");
    },
  );

  test(
    "our listener opens a stream back to js over the inbound connection",
    async (inbound) => {
      const stream = await inbound.newStream(ECHO);
      const data = randomBytes(random(7), 1024 * 1024);
      const writer = stream.writable.getWriter();
      const [received] = await Promise.all([
        readAll(stream.readable),
        writer.write(data).then(() => writer.close()),
      ]);
      assertBytes(received, data);
    },
  );
}
