/**
 * WebRTC-Direct listening: p2prtc dials a p2prtc listener, js-libp2p dials
 * it, junk STUN is dropped before the native stack, silent dialers are
 * freed after the handshake timeout, and closing leaves nothing open.
 *
 * A registration function, not a test file: node-datachannel allows one V8
 * isolate per process, so only one `*_test.ts` of a run may load it. Call
 * {@linkcode directListenCases} from that file.
 *
 * @module
 */

import { ok, rejects, strictEqual } from "node:assert/strict";
import dgram from "node:dgram";
import type { HandleCount, PeerConnectionBackend } from "../core/backend.ts";
import { ConnectionClosedError } from "../core/connection.ts";
import { listenDirect } from "../core/direct_listen.ts";
import { InvalidMultiaddrError, NotSupportedError } from "../core/errors.ts";
import { generateIdentity } from "../core/identity.ts";
import type { NegotiatedStream } from "../core/multistream.ts";
import { WebRTCTransport } from "../core/transport.ts";
import { generateUfrag } from "../core/ufrag.ts";
import { JsPeer } from "./interop_cases.ts";
import { random, randomBytes } from "./random.ts";
import { assertBytes, delay, readAll } from "./stream_helpers.ts";

const ECHO = "/echo/1.0.0";
const LISTEN = "/ip4/127.0.0.1/udp/0/webrtc-direct";

async function echo(stream: NegotiatedStream): Promise<void> {
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
async function sendUdp(
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
    const server = new WebRTCTransport({
      backend,
      identity: await generateIdentity(),
    });
    server.handle(ECHO, echo);
    const client = new WebRTCTransport({
      backend,
      identity: await generateIdentity(),
      bindAddress: "127.0.0.1",
    });
    const listener = await server.listen(LISTEN);
    try {
      ok(listener.addr.startsWith("/ip4/127.0.0.1/udp/"), listener.addr);
      ok(listener.addr.endsWith(`/p2p/${server.identity.peerId}`));
      const [conn, inbound] = await Promise.all([
        client.dial(listener.addr),
        listener.accept(),
      ]);
      strictEqual(
        conn.remotePeer.toString(),
        server.identity.peerId.toString(),
      );
      strictEqual(
        inbound.remotePeer.toString(),
        client.identity.peerId.toString(),
      );
      strictEqual(inbound.direction, "inbound");
      ok(server.connections.has(inbound));

      const stream = await conn.newStream(ECHO);
      const data = randomBytes(random(7), 1024 * 1024);
      const writer = stream.writable.getWriter();
      const [received] = await Promise.all([
        readAll(stream.readable),
        writer.write(data).then(() => writer.close()),
      ]);
      assertBytes(received, data);

      // A second dialer on the same port gets its own connection.
      const third = new WebRTCTransport({
        backend,
        identity: await generateIdentity(),
        bindAddress: "127.0.0.1",
      });
      const [conn2] = await Promise.all([
        third.dial(listener.addr),
        listener.accept(),
      ]);
      const stream2 = await conn2.newStream(ECHO);
      const writer2 = stream2.writable.getWriter();
      const [received2] = await Promise.all([
        readAll(stream2.readable),
        writer2.write(new Uint8Array([1, 2, 3])).then(() => writer2.close()),
      ]);
      assertBytes(received2, new Uint8Array([1, 2, 3]));
      await third[Symbol.asyncDispose]();

      // Accepted connections outlive the listener.
      await listener[Symbol.asyncDispose]();
      const stream3 = await conn.newStream(ECHO);
      const writer3 = stream3.writable.getWriter();
      const [received3] = await Promise.all([
        readAll(stream3.readable),
        writer3.write(new Uint8Array([4, 5])).then(() => writer3.close()),
      ]);
      assertBytes(received3, new Uint8Array([4, 5]));
    } finally {
      await client[Symbol.asyncDispose]();
      await server[Symbol.asyncDispose]();
      await listener[Symbol.asyncDispose]();
      await settle(backend);
    }
  });

  test("IPv6: p2prtc dials a listener on ::1", async () => {
    const backend = await makeBackend();
    const server = new WebRTCTransport({
      backend,
      identity: await generateIdentity(),
    });
    server.handle(ECHO, echo);
    const client = new WebRTCTransport({
      backend,
      identity: await generateIdentity(),
      bindAddress: "::1",
    });
    const listener = await server.listen("/ip6/::1/udp/0/webrtc-direct");
    try {
      ok(listener.addr.startsWith("/ip6/::1/udp/"), listener.addr);
      const [conn] = await Promise.all([
        client.dial(listener.addr, { timeout: 10_000 }),
        listener.accept(),
      ]);
      const stream = await conn.newStream(ECHO);
      const writer = stream.writable.getWriter();
      const [received] = await Promise.all([
        readAll(stream.readable),
        writer.write(new Uint8Array([6])).then(() => writer.close()),
      ]);
      assertBytes(received, new Uint8Array([6]));
    } finally {
      await client[Symbol.asyncDispose]();
      await server[Symbol.asyncDispose]();
      await listener[Symbol.asyncDispose]();
      await settle(backend);
    }
  });

  test("js-libp2p dials our listener and echoes through it", async () => {
    const backend = await makeBackend();
    const server = new WebRTCTransport({
      backend,
      identity: await generateIdentity(),
    });
    server.handle(ECHO, echo);
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
    const server = new WebRTCTransport({
      backend,
      identity: await generateIdentity(),
    });
    server.handle(ECHO, echo);
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

      const client = new WebRTCTransport({
        backend,
        identity: await generateIdentity(),
        bindAddress: "127.0.0.1",
      });
      const [conn] = await Promise.all([
        client.dial(listener.addr),
        listener.accept(),
      ]);
      strictEqual(
        conn.remotePeer.toString(),
        server.identity.peerId.toString(),
      );
      await client[Symbol.asyncDispose]();
    } finally {
      await server[Symbol.asyncDispose]();
      await listener[Symbol.asyncDispose]();
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
}
