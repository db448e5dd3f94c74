/**
 * Interop with js-libp2p over WebRTC-Direct: p2prtc dials a js-libp2p 3.x
 * node (`@libp2p/webrtc`) running in another process on loopback.
 * Registered by the backend test files that can dial.
 */

import { ok, rejects, strictEqual } from "node:assert/strict";
import type { PeerConnectionBackend } from "../core/backend.ts";
import type { WebRTCConnection } from "../core/connection.ts";
import { dialDirect } from "../core/direct_dial.ts";
import {
  ConnectionFailedError,
  PeerIdMismatchError,
  TimeoutError,
} from "../core/errors.ts";
import { generateIdentity, type Identity } from "../core/identity.ts";
import { ping, PING_PROTOCOL } from "../core/ping.ts";
import { AGENT_VERSION, WebRTCTransport } from "../core/transport.ts";
import { random, randomBytes } from "./random.ts";
import { assertBytes, readAll } from "./stream_helpers.ts";

const ECHO = "/echo/1.0.0";

/** A js-libp2p peer in a child process, and its line-based control channel. */
export class JsPeer implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #lines: ReadableStreamDefaultReader<string>;
  #buffer = "";
  /** The peer's WebRTC-Direct multiaddr, with certhash and peer id. */
  addr = "";

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.#lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** Starts the peer and waits (bounded) for its address. */
  static async start(): Promise<JsPeer> {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "-A",
        new URL("./interop/js_peer.ts", import.meta.url).pathname,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const peer = new JsPeer(child);
    peer.addr = (await peer.expect("listening", 60_000)).trim();
    return peer;
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
        if (done) break;
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
      conn.handle("/reply/1.0.0", async (stream) => {
        const request = new TextDecoder().decode(
          await readAll(stream.readable),
        );
        const writer = stream.writable.getWriter();
        await writer.write(new TextEncoder().encode(`got ${request}`));
        await writer.close();
      });
      await peer.command(`request ${identity.peerId} /reply/1.0.0 hello-js`);
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
