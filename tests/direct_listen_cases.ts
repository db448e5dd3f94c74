/**
 * WebRTC-Direct listening: p2prtc dials a p2prtc listener, js-libp2p dials
 * it, junk STUN is dropped before the native stack, silent dialers are
 * freed after the handshake timeout, and closing leaves nothing open; a
 * persisted certificate keeps the address across restarts, v1 and v2
 * dialers (libdatachannel and werift) share a port, several listeners live
 * side by side, and the bounds hold (handshakes in flight, the accept
 * queue, inbound streams negotiating).
 *
 * A registration function, not a test file: node-datachannel allows one V8
 * isolate per process, so only one `*_test.ts` of a run may load it. Call
 * {@linkcode directListenCases} from that file.
 *
 * @module
 */

import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import dgram from "node:dgram";
import type {
  HandleCount,
  PeerConnection,
  PeerConnectionBackend,
  StunRequest,
} from "../core/backend.ts";
import { werift } from "../backends/werift.ts";
import {
  generateCertificate,
  InvalidCertificateError,
  loadOrCreateCertificate,
} from "../core/certificate.ts";
import { encodeCerthash } from "../core/certhash.ts";
import {
  ConnectionClosedError,
  type WebRTCConnection,
} from "../core/connection.ts";
import {
  listenDirect,
  type WebRTCDirectListener,
} from "../core/direct_listen.ts";
import {
  InvalidMultiaddrError,
  NotSupportedError,
  P2prtcError,
  StreamErrorCode,
  StreamResetError,
} from "../core/errors.ts";
import {
  generateIdentity,
  type Identity,
  loadOrCreateIdentity,
} from "../core/identity.ts";
import type { NegotiatedStream } from "../core/multistream.ts";
import { WebRTCStream } from "../core/stream.ts";
import { type DialOptions, WebRTCTransport } from "../core/transport.ts";
import {
  generateUfrag,
  UFRAG_PREFIX_V1,
  UFRAG_PREFIX_V2,
} from "../core/ufrag.ts";
import { JsPeer } from "./interop_cases.ts";
import { random, randomBytes } from "./random.ts";
import { delay, echoOnce, readAll } from "./stream_helpers.ts";

const ECHO = "/echo/1.0.0";
const LISTEN = "/ip4/127.0.0.1/udp/0/webrtc-direct";

/** A handler that echoes a stream back until the peer's FIN. */
export async function echo(stream: NegotiatedStream): Promise<void> {
  await stream.readable.pipeTo(stream.writable);
}

/**
 * A STUN Binding request as an ICE agent sends it: USERNAME, then
 * MESSAGE-INTEGRITY keyed with `key` (the listener's password, which in v1
 * is the server ufrag), then FINGERPRINT. libjuice ignores a Binding
 * request without MESSAGE-INTEGRITY before reporting it.
 */
export async function stunBindingRequest(
  username: string,
  key = username.slice(0, Math.max(0, username.indexOf(":"))) || "x",
): Promise<Uint8Array> {
  const name = new TextEncoder().encode(username);
  const padded = (name.length + 3) & ~3;
  const packet = new Uint8Array(20 + 4 + padded + 24 + 8);
  const view = new DataView(packet.buffer);
  view.setUint16(0, 0x0001); // Binding request
  view.setUint32(4, 0x2112a442); // magic cookie
  crypto.getRandomValues(packet.subarray(8, 20)); // transaction id
  view.setUint16(20, 0x0006); // USERNAME
  view.setUint16(22, name.length);
  packet.set(name, 24);
  const integrityAt = 24 + padded;
  // The length covers MESSAGE-INTEGRITY while it is computed.
  view.setUint16(2, integrityAt - 20 + 24);
  const hmacKey = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(key),
    { name: "HMAC", hash: "SHA-1" },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(
    await crypto.subtle.sign("HMAC", hmacKey, packet.subarray(0, integrityAt)),
  );
  view.setUint16(integrityAt, 0x0008);
  view.setUint16(integrityAt + 2, 20);
  packet.set(mac, integrityAt + 4);
  const fingerprintAt = integrityAt + 24;
  view.setUint16(2, fingerprintAt - 20 + 8);
  view.setUint16(fingerprintAt, 0x8028);
  view.setUint16(fingerprintAt + 2, 4);
  view.setUint32(
    fingerprintAt + 4,
    (crc32(packet.subarray(0, fingerprintAt)) ^ 0x5354554e) >>> 0,
  );
  return packet;
}

function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** Sends `packets` from a fresh UDP socket, then closes it after `holdMs`. */
export async function sendUdp(
  port: number,
  packets: Uint8Array[],
  holdMs = 200,
): Promise<void> {
  const socket = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  for (const packet of packets) {
    await new Promise<void>((resolve, reject) =>
      socket.send(
        packet,
        port,
        "127.0.0.1",
        (error) => error ? reject(error) : resolve(),
      )
    );
  }
  await delay(holdMs);
  await new Promise<void>((resolve) => socket.close(() => resolve()));
}

/**
 * `examples/echo.ts listen` in a child process with the demo's permissions
 * (and write access to `writable`): a listener of its own, stopped with
 * SIGINT as a user would.
 */
class EchoListenerProcess implements AsyncDisposable {
  readonly addr: string;
  readonly #child: Deno.ChildProcess;
  readonly #output: Promise<string>;

  private constructor(
    child: Deno.ChildProcess,
    addr: string,
    output: Promise<string>,
  ) {
    this.#child = child;
    this.addr = addr;
    this.#output = output;
  }

  /** Starts the listener and waits (30 s at most) for its address. */
  static async start(
    args: string[],
    writable: string,
  ): Promise<EchoListenerProcess> {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "-P=demo",
        `--allow-write=${writable}`,
        "--config",
        new URL("../deno.json", import.meta.url).pathname,
        new URL("../examples/echo.ts", import.meta.url).pathname,
        "listen",
        ...args,
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const { promise: addr, resolve } = Promise.withResolvers<string>();
    const readOut = (async () => {
      let text = "";
      for await (
        const chunk of child.stdout.pipeThrough(new TextDecoderStream())
      ) {
        text += chunk;
        const line = /^(\/ip4\/\S+)\n/m.exec(text);
        if (line) resolve(line[1]);
      }
      return text;
    })();
    const output = Promise.all([
      readOut,
      new Response(child.stderr).text(),
    ]).then(([out, err]) => out + err);
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    try {
      const found = await Promise.race([
        addr,
        output.then((text) => {
          throw new Error(`the listener ended without an address:\n${text}`);
        }),
      ]);
      return new EchoListenerProcess(child, found, output);
    } catch (error) {
      await child.status;
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends SIGINT and returns the exit code (SIGKILL after 20 s). */
  async stop(): Promise<number> {
    try {
      this.#child.kill("SIGINT");
    } catch {
      // It has ended already.
    }
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), 20_000);
    try {
      const status = await this.#child.status;
      await this.#output;
      return status.code;
    } finally {
      clearTimeout(timer);
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/**
 * A backend that passes everything to `backend` and records what a listener
 * or dialer asked of it: the STUN requests reported to the listener, the
 * peer connections created. `hold()` makes the peer connections created
 * from then on wait before applying the remote description, until the
 * function it returns is called: a handshake kept in flight on purpose.
 */
function spyBackend(backend: PeerConnectionBackend) {
  const stunRequests: StunRequest[] = [];
  const created: PeerConnection[] = [];
  let gate: Promise<void> | undefined;
  const spy: PeerConnectionBackend = {
    name: backend.name,
    capabilities: backend.capabilities,
    openHandles: () => backend.openHandles(),
    createPeerConnection(options) {
      const pc = backend.createPeerConnection(options);
      created.push(pc);
      const held = gate;
      if (held !== undefined) {
        const apply = pc.setRemoteDescription.bind(pc);
        pc.setRemoteDescription = async (description) => {
          await held;
          await apply(description);
        };
      }
      return pc;
    },
    listenDirect: (options) =>
      backend.listenDirect!({
        ...options,
        onStunRequest(request) {
          stunRequests.push(request);
          options.onStunRequest(request);
        },
      }),
  };
  return {
    backend: spy,
    stunRequests,
    created,
    hold(): () => void {
      const { promise, resolve } = Promise.withResolvers<void>();
      gate = promise;
      return () => {
        gate = undefined;
        resolve();
      };
    },
  };
}

/** Polls `condition` every 20 ms for at most `ms`; tells whether it held. */
export async function eventually(
  condition: () => boolean,
  ms = 10_000,
): Promise<boolean> {
  for (let waited = 0; !condition() && waited < ms; waited += 20) {
    await delay(20);
  }
  return condition();
}

/** A transport that answers `/echo/1.0.0`. */
function echoNode(
  backend: PeerConnectionBackend,
  identity: Identity,
  bindAddress?: string,
): WebRTCTransport {
  const node = new WebRTCTransport({ backend, identity, bindAddress });
  node.handle(ECHO, echo);
  return node;
}

/**
 * `client` dials `addr` while `listener` accepts; checks each side sees the
 * other's peer id and that `bytes` come back through `/echo/1.0.0`.
 */
async function dialAndEcho(
  client: WebRTCTransport,
  listener: WebRTCDirectListener,
  addr: string,
  bytes: Uint8Array,
  options: DialOptions = {},
): Promise<WebRTCConnection> {
  const [conn, inbound] = await Promise.all([
    client.dial(addr, options),
    listener.accept(),
  ]);
  strictEqual(`${inbound.remotePeer}`, `${client.identity.peerId}`);
  ok(addr.endsWith(`/p2p/${conn.remotePeer}`));
  await echoOnce(conn, bytes);
  return conn;
}

/** Closes everything given, in order, whatever fails. */
async function disposeAll(
  ...resources: (AsyncDisposable | undefined)[]
): Promise<void> {
  for (const resource of resources) {
    try {
      await resource?.[Symbol.asyncDispose]();
    } catch {
      // The others are closed all the same.
    }
  }
}

/** Asserts `backend` has nothing open, UDP listeners included. */
function assertNothingOpen(backend: PeerConnectionBackend): void {
  const counts = backend.openHandles();
  deepStrictEqual(
    [counts.peerConnections, counts.dataChannels, counts.udpListeners ?? 0],
    [0, 0, 0],
  );
}

/** Registers the WebRTC-Direct listener cases for a backend that listens. */
export function directListenCases(
  label: string,
  makeBackend: () => Promise<PeerConnectionBackend>,
  settle: (backend: PeerConnectionBackend) => Promise<void>,
): void {
  const test = (name: string, fn: () => Promise<void>) =>
    Deno.test(`direct listen (${label}): ${name}`, fn);

  test("p2prtc dials a p2prtc listener and echoes 1 MiB", async () => {
    const backend = await makeBackend();
    const server = echoNode(backend, await generateIdentity());
    const client = echoNode(backend, await generateIdentity(), "127.0.0.1");
    const third = echoNode(backend, await generateIdentity(), "127.0.0.1");
    const listener = await server.listen(LISTEN);
    try {
      ok(listener.addr.startsWith("/ip4/127.0.0.1/udp/"), listener.addr);
      ok(listener.addr.endsWith(`/p2p/${server.identity.peerId}`));
      const [conn, inbound] = await Promise.all([
        client.dial(listener.addr),
        listener.accept(),
      ]);
      strictEqual(`${conn.remotePeer}`, `${server.identity.peerId}`);
      strictEqual(`${inbound.remotePeer}`, `${client.identity.peerId}`);
      strictEqual(inbound.direction, "inbound");
      ok(server.connections.has(inbound));
      await echoOnce(conn, randomBytes(random(7), 1024 * 1024));

      // A second dialer on the same port gets its own connection.
      const conn2 = await dialAndEcho(
        third,
        listener,
        listener.addr,
        new Uint8Array([1, 2, 3]),
      );
      await conn2[Symbol.asyncDispose]();

      // Accepted connections outlive the listener.
      await listener[Symbol.asyncDispose]();
      await echoOnce(conn, new Uint8Array([4, 5]));
    } finally {
      await disposeAll(client, third, server, listener);
      await settle(backend);
    }
  });

  test("IPv6: p2prtc dials a listener on ::1", async () => {
    const backend = await makeBackend();
    const server = echoNode(backend, await generateIdentity());
    const client = echoNode(backend, await generateIdentity(), "::1");
    const listener = await server.listen("/ip6/::1/udp/0/webrtc-direct");
    try {
      ok(listener.addr.startsWith("/ip6/::1/udp/"), listener.addr);
      await dialAndEcho(client, listener, listener.addr, new Uint8Array([6]), {
        timeout: 10_000,
      });
    } finally {
      await disposeAll(client, server, listener);
      await settle(backend);
    }
  });

  test("js-libp2p dials our listener and echoes through it", async () => {
    const backend = await makeBackend();
    const server = echoNode(backend, await generateIdentity());
    const listener = await server.listen(LISTEN);
    try {
      await using peer = await JsPeer.start();
      const accepted = listener.accept();
      await peer.command(`dial ${listener.addr}`);
      strictEqual(
        (await peer.expect("connected ")).trim(),
        server.identity.peerId.toString(),
      );
      const inbound = await accepted;
      strictEqual(
        `/p2p/${inbound.remotePeer}`,
        peer.addr.slice(peer.addr.lastIndexOf("/p2p/")),
      );
      await peer.command(
        `roundtrip ${server.identity.peerId} ${ECHO} hello-from-js`,
      );
      strictEqual(await peer.expect("reply "), "hello-from-js");
    } finally {
      await server[Symbol.asyncDispose]();
      await listener[Symbol.asyncDispose]();
      await settle(backend);
    }
  });

  test("junk STUN usernames are dropped and the listener keeps working", async () => {
    const backend = await makeBackend();
    const server = echoNode(backend, await generateIdentity());
    const client = echoNode(backend, await generateIdentity(), "127.0.0.1");
    const listener = await server.listen(LISTEN);
    try {
      const ufrag = generateUfrag();
      await sendUdp(listener.port, [
        await stunBindingRequest(`${"a".repeat(300)}:${ufrag}`), // too long
        await stunBindingRequest(`${ufrag}\r\na=x:${ufrag}`), // CR/LF
        await stunBindingRequest(`other+prefix/${"b".repeat(30)}:abcd`), // version
        await stunBindingRequest("no-colon-here"),
        await stunBindingRequest("libp2p+webrtc+v1/x:abcd"), // pwd too short
        new Uint8Array([0, 1, 2, 3]), // not STUN
      ]);
      strictEqual(listener.handshakesInFlight, 0);
      // Those libjuice could not rule out itself reached our validation.
      ok(listener.droppedStunRequests >= 2, `${listener.droppedStunRequests}`);
      const counts: HandleCount = backend.openHandles();
      strictEqual(counts.peerConnections, 0);

      await dialAndEcho(client, listener, listener.addr, new Uint8Array([8]));
    } finally {
      await disposeAll(client, server, listener);
      await settle(backend);
    }
  });

  test("a dialer that goes silent is freed after the handshake timeout", async () => {
    const backend = await makeBackend();
    const listener = await listenDirect(LISTEN, {
      backend,
      identity: await generateIdentity(),
      handshakeTimeout: 1_000,
    });
    try {
      const ufrag = generateUfrag();
      await sendUdp(listener.port, [
        await stunBindingRequest(`${ufrag}:${ufrag}`),
      ]);
      strictEqual(listener.handshakesInFlight, 1);
      strictEqual(backend.openHandles().peerConnections, 1);
      for (let i = 0; i < 100 && listener.handshakesInFlight > 0; i++) {
        await delay(50);
      }
      strictEqual(listener.handshakesInFlight, 0);
      for (
        let i = 0;
        i < 100 && backend.openHandles().peerConnections > 0;
        i++
      ) {
        await delay(50);
      }
      strictEqual(backend.openHandles().peerConnections, 0);
      strictEqual(backend.openHandles().dataChannels, 0);
    } finally {
      await listener[Symbol.asyncDispose]();
      await settle(backend);
    }
    const after = backend.openHandles();
    strictEqual(after.peerConnections + after.dataChannels, 0);
    strictEqual(after.udpListeners ?? 0, 0);
  });

  test("closing the listener aborts handshakes and leaves nothing open", async () => {
    const backend = await makeBackend();
    const listener = await listenDirect(LISTEN, {
      backend,
      identity: await generateIdentity(),
    });
    strictEqual(backend.openHandles().udpListeners, 1);
    const ufrag = generateUfrag();
    await sendUdp(listener.port, [
      await stunBindingRequest(`${ufrag}:${ufrag}`),
    ]);
    strictEqual(listener.handshakesInFlight, 1);
    const pending = rejects(listener.accept(), ConnectionClosedError);
    await listener[Symbol.asyncDispose]();
    await pending;
    await settle(backend);
    const after = backend.openHandles();
    strictEqual(after.peerConnections + after.dataChannels, 0);
    strictEqual(after.udpListeners ?? 0, 0);
    await rejects(listener.accept(), ConnectionClosedError);
  });

  test("bad listen addresses and backends that cannot listen are refused", async () => {
    const backend = await makeBackend();
    const identity = await generateIdentity();
    await rejects(
      listenDirect("/ip4/127.0.0.1/tcp/0", { backend, identity }),
      InvalidMultiaddrError,
    );
    const mute: PeerConnectionBackend = {
      name: "mute",
      capabilities: { directDial: true, directListen: false },
      createPeerConnection: (o) => backend.createPeerConnection(o),
      openHandles: () => backend.openHandles(),
    };
    await rejects(
      listenDirect(LISTEN, { backend: mute, identity }),
      (error: Error) =>
        error instanceof NotSupportedError &&
        error.message.includes("libdatachannel"),
    );
  });
  test("a restart with the persisted certificate and key keeps the address", async () => {
    const backend = await makeBackend();
    const dir = await Deno.makeTempDir({ prefix: "p2prtc_listen_" });
    const certFile = `${dir}/cert.pem`;
    const keyFile = `${dir}/node.key`;
    const client = echoNode(backend, await generateIdentity(), "127.0.0.1");
    let server: WebRTCTransport | undefined;
    let listener: WebRTCDirectListener | undefined;
    try {
      // The first run is the example, in a process of its own: a real
      // restart, and the port is free again once that process has ended
      // (libdatachannel keeps a closed listener's port; known-issues.md).
      let addr: string;
      {
        await using first = await EchoListenerProcess.start([
          "--cert-file",
          certFile,
          "--identity-file",
          keyFile,
        ], dir);
        addr = first.addr;
        const conn = await client.dial(addr);
        await echoOnce(conn, new Uint8Array([1]));
        await conn[Symbol.asyncDispose]();
        strictEqual(await first.stop(), 0);
      }
      // The second run: this process, the same files, the same port.
      const certificate = await loadOrCreateCertificate(certFile);
      ok(
        addr.includes(`/certhash/${encodeCerthash(certificate.fingerprint)}/`),
      );
      server = echoNode(backend, await loadOrCreateIdentity(keyFile));
      const port = /\/udp\/(\d+)\//.exec(addr)![1];
      listener = await server.listen(
        `/ip4/127.0.0.1/udp/${port}/webrtc-direct`,
        { certificate: certificate.pem },
      );
      strictEqual(listener.addr, addr);
      await dialAndEcho(client, listener, addr, new Uint8Array([2, 3]));
    } finally {
      await disposeAll(client, server, listener);
      await settle(backend);
      await Deno.remove(dir, { recursive: true });
    }
    assertNothingOpen(backend);
  });

  test("a certificate that is not its own fingerprint's is refused", async () => {
    const backend = await makeBackend();
    const identity = await generateIdentity();
    const a = await generateCertificate();
    const b = await generateCertificate();
    for (
      const certificate of [
        { pem: a.pem, fingerprint: b.fingerprint },
        { certificate: a.pem.certificate, privateKey: b.pem.privateKey },
      ]
    ) {
      await rejects(
        listenDirect(LISTEN, { backend, identity, certificate }),
        InvalidCertificateError,
      );
    }
    await rejects(
      listenDirect(LISTEN, { backend, identity, maxInFlightHandshakes: 0 }),
      RangeError,
    );
    assertNothingOpen(backend);
  });

  for (const layout of [[3], [2, 1]]) {
    const count = layout.reduce((sum, n) => sum + n, 0);
    test(`${count} listeners in ${layout.length} transport(s) work side by side`, async () => {
      const backend = await makeBackend();
      const servers = await Promise.all(
        layout.map(async () => echoNode(backend, await generateIdentity())),
      );
      const listeners: WebRTCDirectListener[] = [];
      const clients: WebRTCTransport[] = [];
      try {
        for (const [i, perServer] of layout.entries()) {
          for (let k = 0; k < perServer; k++) {
            listeners.push(await servers[i].listen(LISTEN));
          }
        }
        strictEqual(new Set(listeners.map((l) => l.port)).size, count);
        for (let i = 0; i < count; i++) {
          clients.push(
            echoNode(backend, await generateIdentity(), "127.0.0.1"),
          );
        }
        // Every dialer at once, each to its own listener.
        await Promise.all(
          listeners.map((listener, i) =>
            dialAndEcho(
              clients[i],
              listener,
              listener.addr,
              randomBytes(random(100 + i), 1000 + i),
            )
          ),
        );
        strictEqual(
          servers.reduce((sum, server) => sum + server.connections.size, 0),
          count,
        );
      } finally {
        await disposeAll(...clients, ...servers, ...listeners);
        await settle(backend);
      }
      assertNothingOpen(backend);
    });
  }

  test("v1 and v2 dialers share one port", async () => {
    const real = await makeBackend();
    const spy = spyBackend(real);
    const server = echoNode(spy.backend, await generateIdentity());
    const v1 = echoNode(real, await generateIdentity(), "127.0.0.1");
    const v2 = echoNode(real, await generateIdentity(), "127.0.0.1");
    const listener = await server.listen(LISTEN);
    try {
      await dialAndEcho(v2, listener, listener.addr, new Uint8Array([2]), {
        ufragVersion: 2,
      });
      await dialAndEcho(v1, listener, listener.addr, new Uint8Array([1]));
      const prefixes = new Set(
        spy.stunRequests.map((r) => r.serverUfrag.slice(0, 17)),
      );
      deepStrictEqual(prefixes, new Set([UFRAG_PREFIX_V2, UFRAG_PREFIX_V1]));
      // v2: the dialer's own ufrag, not the server's, is the USERNAME's tail.
      const request = spy.stunRequests.find((r) =>
        r.serverUfrag.startsWith(UFRAG_PREFIX_V2)
      )!;
      ok(request.clientUfrag !== request.serverUfrag);
      strictEqual(server.connections.size, 2);
    } finally {
      await disposeAll(v1, v2, server, listener);
      await settle(real);
    }
    assertNothingOpen(real);
  });

  test("werift dials the listener with v1 and with v2", async () => {
    const backend = await makeBackend();
    const spy = spyBackend(backend);
    const dialer = werift();
    const server = echoNode(spy.backend, await generateIdentity());
    const client = echoNode(dialer, await generateIdentity(), "127.0.0.1");
    const listener = await server.listen(LISTEN);
    try {
      for (const ufragVersion of [1, 2] as const) {
        const conn = await dialAndEcho(
          client,
          listener,
          listener.addr,
          randomBytes(random(ufragVersion), 20_000),
          { ufragVersion, timeout: 15_000 },
        );
        await conn[Symbol.asyncDispose]();
        const prefix = ufragVersion === 1 ? UFRAG_PREFIX_V1 : UFRAG_PREFIX_V2;
        ok(spy.stunRequests.at(-1)!.serverUfrag.startsWith(prefix));
      }
    } finally {
      await disposeAll(client, server, listener);
      await dialer.idle(AbortSignal.timeout(10_000));
      await settle(backend);
    }
    deepStrictEqual(dialer.openHandles(), {
      peerConnections: 0,
      dataChannels: 0,
    });
    assertNothingOpen(backend);
  });

  test("handshakes beyond the in-flight cap are ignored without allocation", async () => {
    const real = await makeBackend();
    const spy = spyBackend(real);
    const server = echoNode(spy.backend, await generateIdentity());
    const client = echoNode(real, await generateIdentity(), "127.0.0.1");
    const listener = await server.listen(LISTEN, { maxInFlightHandshakes: 4 });
    try {
      // A real dialer's handshake, held in flight.
      const release = spy.hold();
      const dialing = client.dial(listener.addr);
      dialing.catch(() => {});
      ok(await eventually(() => spy.created.length === 1));
      // Three silent dialers fill the other slots.
      const silent = async (n: number) => {
        const packets: Uint8Array[] = [];
        for (let i = 0; i < n; i++) {
          const ufrag = generateUfrag();
          packets.push(await stunBindingRequest(`${ufrag}:${ufrag}`));
        }
        return packets;
      };
      await sendUdp(listener.port, await silent(3));
      ok(await eventually(() => listener.handshakesInFlight === 4));
      strictEqual(spy.created.length, 4);
      // Five more: over the cap, so nothing is made for them.
      await sendUdp(listener.port, await silent(5));
      ok(await eventually(() => listener.refusedHandshakes === 5));
      strictEqual(listener.handshakesInFlight, 4);
      strictEqual(spy.created.length, 4);
      strictEqual(listener.droppedStunRequests, 0);

      // The held handshake is unaffected and completes.
      release();
      const [conn, inbound] = await Promise.all([dialing, listener.accept()]);
      strictEqual(`${inbound.remotePeer}`, `${client.identity.peerId}`);
      await echoOnce(conn, new Uint8Array([9]));
      strictEqual(listener.handshakesInFlight, 3);
      strictEqual(spy.created.length, 4);
    } finally {
      await disposeAll(client, server, listener);
      await settle(real);
    }
    assertNothingOpen(real);
  });

  test("a full accept queue closes further connections; draining it lets them in", async () => {
    const backend = await makeBackend();
    const server = echoNode(backend, await generateIdentity());
    const clients = await Promise.all(
      [0, 1, 2, 3].map(async () =>
        echoNode(backend, await generateIdentity(), "127.0.0.1")
      ),
    );
    const listener = await server.listen(LISTEN, { acceptQueueSize: 2 });
    try {
      // Nobody accepts: two are queued, the third is closed by the listener.
      const conns: WebRTCConnection[] = [];
      for (const client of clients.slice(0, 2)) {
        conns.push(await client.dial(listener.addr));
      }
      // The listener closes the third once its side of Noise is done, which
      // can be before the dialer has read the last message: the dial then
      // fails rather than returning a connection that closes.
      const third = await clients[2].dial(listener.addr).then(
        async (conn) => await eventually(() => conn.isClosed) ? "closed" : conn,
        (error) => error instanceof P2prtcError ? "refused" : error,
      );
      ok(third === "closed" || third === "refused", String(third));
      ok(!conns[0].isClosed && !conns[1].isClosed);
      ok(await eventually(() => server.connections.size === 2));
      for (const client of clients.slice(0, 2)) {
        strictEqual(
          `${(await listener.accept()).remotePeer}`,
          `${client.identity.peerId}`,
        );
      }
      // Room again: the next dialer is queued and accepted.
      await clients[3].dial(listener.addr);
      strictEqual(
        `${(await listener.accept()).remotePeer}`,
        `${clients[3].identity.peerId}`,
      );
      strictEqual(server.connections.size, 3);
    } finally {
      await disposeAll(...clients, server, listener);
      await settle(backend);
    }
    assertNothingOpen(backend);
  });

  test("23 inbound streams past the pending bound are reset, not leaked", async () => {
    const real = await makeBackend();
    const spy = spyBackend(real);
    const server = echoNode(real, await generateIdentity());
    const client = echoNode(spy.backend, await generateIdentity(), "127.0.0.1");
    const listener = await server.listen(LISTEN, {
      maxPendingInboundStreams: 4,
    });
    try {
      const [conn, inbound] = await Promise.all([
        client.dial(listener.addr),
        listener.accept(),
      ]);
      // Raw channels that never negotiate: four fill the bound.
      const pc = spy.created[0];
      const raw = Array.from(
        { length: 6 },
        () => new WebRTCStream(pc.createDataChannel("")),
      );
      const outcomes = raw.map((stream) =>
        readAll(stream.readable).then(() => "end", (error) => error)
      );
      for (const outcome of outcomes.slice(4)) {
        const error = await outcome;
        ok(error instanceof StreamResetError, String(error));
        strictEqual(error.remote, true);
        strictEqual(error.errorCode, StreamErrorCode.RESOURCE_LIMIT_EXCEEDED);
      }
      // While the four wait, a real stream is refused as well.
      await rejects(conn.newStream(ECHO), P2prtcError);
      strictEqual(inbound.streams.size, 4);
      // Once they go, nothing is left of them and streams work again.
      for (const stream of raw.slice(0, 4)) stream.reset();
      ok(await eventually(() => inbound.streams.size === 0));
      await echoOnce(conn, new Uint8Array([2, 3]));
      for (const outcome of outcomes.slice(0, 4)) {
        ok((await outcome) instanceof StreamResetError);
      }
    } finally {
      await disposeAll(client, server, listener);
      await settle(real);
    }
    assertNothingOpen(real);
  });
}
