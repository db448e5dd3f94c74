/**
 * The WebSocket rendezvous (`signaling/websocket.ts`,
 * `signaling/rendezvous_server.ts`) on loopback, without WebRTC:
 * authentication and what it refuses, what one peer can and cannot do to
 * another's signalling, the limits, hostile frames in both directions, and
 * several instances sharing one view through Deno KV (in two workers, and in
 * two processes). Real WebRTC through the rendezvous is in
 * `rendezvous_cases.ts` and `browser_rendezvous_cases.ts`.
 */

import {
  deepStrictEqual,
  ok,
  rejects,
  strictEqual,
  throws,
} from "node:assert/strict";
import { generateKeyPair } from "@libp2p/crypto/keys";
import {
  MalformedSignalingMessageError,
  P2prtcError,
  SignalingAbortedError,
  SignalingMessageTooLargeError,
  TimeoutError,
} from "../core/errors.ts";
import {
  generateIdentity,
  type Identity,
  identityFromPrivateKey,
} from "../core/identity.ts";
import type { SignalingChannel } from "../core/signaling.ts";
import { memoryEngine } from "../signaling/rendezvous_server.ts";
import {
  PeerUnreachableError,
  RendezvousClient,
  type RendezvousClientOptions,
  RendezvousClosedError,
} from "../signaling/websocket.ts";
import {
  authFrame,
  bounded,
  RawPeer,
  startRendezvous,
  STEP_MS,
  until,
} from "./rendezvous_helpers.ts";
import { delay, isSettled } from "./stream_helpers.ts";

const OFFER = {
  type: "offer",
  sdp: "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n",
} as const;
const ANSWER = {
  type: "answer",
  sdp: "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\n",
} as const;
const CANDIDATE = {
  type: "candidate",
  candidate: {
    candidate: "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host",
    sdpMid: "0",
    sdpMLineIndex: 0,
  },
} as const;

/** `count` fresh identities. */
function identities(count: number): Promise<Identity[]> {
  return Promise.all(Array.from({ length: count }, () => generateIdentity()));
}

/**
 * What `raw` sends, as a dialer, into its attempts with `to`: `send(attempt,
 * op, data?)` puts one frame on the wire, whatever `op` and `data` are.
 */
function sendAs(raw: RawPeer, to: Identity) {
  return (attempt: string, op: unknown, data?: unknown) =>
    raw.send({
      type: "send",
      to: to.peerId.toString(),
      attempt,
      dialer: true,
      op,
      ...(data === undefined ? {} : { data }),
    });
}

/** Connects a client that is closed when the test's scope ends. */
function client(
  url: string,
  identity: Identity,
  options: Omit<RendezvousClientOptions, "identity"> = {},
): Promise<RendezvousClient> {
  return RendezvousClient.connect(url, {
    identity,
    timeout: STEP_MS,
    ...options,
  });
}

function closedWith(reason: string) {
  return (error: unknown) =>
    error instanceof RendezvousClosedError && error.reason === reason;
}

function unreachable(reason: "not-registered" | "disconnected") {
  return (error: unknown) =>
    error instanceof PeerUnreachableError && error.reason === reason;
}

Deno.test("rendezvous: a client proves its peer ID and the server registers it", async () => {
  await using server = startRendezvous();
  const identity = await generateIdentity();
  await using alice = await client(server.url, identity);
  strictEqual(alice.peerId.toString(), identity.peerId.toString());
  strictEqual(server.handler.connections, 1);
  strictEqual(await isSettled(alice.closed), false);
  await alice.close();
  strictEqual((await alice.closed).reason, "closed");
  // The server noticed: no connection is left.
  await until(
    () => server.handler.connections === 0,
    "the server to drop the connection",
  );
});

Deno.test("rendezvous: an offer, candidates and the end travel between two clients, both ways", async () => {
  await using server = startRendezvous();
  const [ida, idb] = await identities(2);
  await using alice = await client(server.url, ida);
  await using bob = await client(server.url, idb);
  const toBob = alice.dial(idb.peerId.toString());
  await toBob.send(OFFER);
  await toBob.send(CANDIDATE);
  await toBob.send({ type: "candidate", candidate: null });
  const incoming = await bounded(bob.accept(), "bob's incoming attempt");
  strictEqual(incoming.remotePeer, ida.peerId.toString());
  const fromAlice = incoming.channel;
  deepStrictEqual(await fromAlice.receive(), OFFER);
  deepStrictEqual(await fromAlice.receive(), CANDIDATE);
  deepStrictEqual(await fromAlice.receive(), {
    type: "candidate",
    candidate: null,
  });
  await fromAlice.send(ANSWER);
  deepStrictEqual(await toBob.receive(), ANSWER);
  strictEqual(alice.attempts, 1);
  await toBob.close();
  strictEqual(await fromAlice.receive(), null);
  strictEqual(await fromAlice.receive(), null);
  await fromAlice.close();
  strictEqual(await toBob.receive(), null);
  // Both ends done: neither client keeps the attempt.
  strictEqual(alice.attempts, 0);
  strictEqual(bob.attempts, 0);
});

Deno.test("rendezvous: many attempts share one socket, each with its own messages", async () => {
  await using server = startRendezvous();
  const [ida, idb] = await identities(2);
  await using alice = await client(server.url, ida);
  await using bob = await client(server.url, idb);
  const count = 8;
  const dialed: SignalingChannel[] = [];
  for (let i = 0; i < count; i++) {
    const channel = alice.dial(idb.peerId);
    await channel.send({ type: "offer", sdp: `v=0\r\ns=${i}\r\n` });
    dialed.push(channel);
  }
  // Bob dials Alice at the same time: attempt ids never mix directions.
  const back = bob.dial(ida.peerId);
  await back.send({ type: "offer", sdp: "v=0\r\ns=back\r\n" });
  const seen = new Set<string>();
  for (let i = 0; i < count; i++) {
    const { channel } = await bounded(bob.accept(), "an attempt");
    const offer = await channel.receive();
    ok(offer?.type === "offer");
    seen.add(offer.sdp);
    await channel.send({ type: "answer", sdp: offer.sdp });
    await channel.close();
  }
  strictEqual(seen.size, count);
  for (let i = 0; i < count; i++) {
    const answer = await dialed[i].receive();
    strictEqual(answer?.type === "answer" && answer.sdp, `v=0\r\ns=${i}\r\n`);
    strictEqual(await dialed[i].receive(), null);
    await dialed[i].close();
  }
  const fromBob = await bounded(alice.accept(), "bob's attempt");
  deepStrictEqual(await fromBob.channel.receive(), {
    type: "offer",
    sdp: "v=0\r\ns=back\r\n",
  });
  await fromBob.channel.close();
  await back.close();
  strictEqual(await back.receive(), null);
});

// ---------------------------------------------------------------------------
// Authentication

Deno.test("rendezvous auth: a signature that does not verify is refused (4001)", async () => {
  await using server = startRendezvous();
  const identity = await generateIdentity();
  await using raw = await RawPeer.open(server.url);
  const challenge = await raw.next();
  strictEqual(challenge.type, "challenge");
  strictEqual(challenge.v, 1);
  const frame = await authFrame(identity, server.host, String(challenge.nonce));
  // One bit off.
  const sig = frame.sig;
  frame.sig = (sig[0] === "A" ? "B" : "A") + sig.slice(1);
  raw.send(frame);
  strictEqual((await raw.closed).code, 4001);

  // Through the client: a key that is not the peer ID's.
  const other = await generateIdentity();
  const forged: Identity = {
    peerId: identity.peerId,
    privateKey: other.privateKey,
  };
  await rejects(client(server.url, forged), closedWith("auth-failed"));
  await until(
    () => server.handler.connections === 0,
    "the server to drop the connections",
  );
});

Deno.test("rendezvous auth: nobody registers another peer's ID; its owner stays reachable", async () => {
  await using server = startRendezvous();
  const [victim, mallory, carol] = await identities(3);
  await using owner = await client(server.url, victim);

  // Mallory claims the victim's ID with her own key and a good signature.
  await using claim = await RawPeer.open(server.url);
  const challenge = await claim.next();
  const own = await authFrame(mallory, server.host, String(challenge.nonce));
  claim.send({ ...own, peer: victim.peerId.toString() });
  strictEqual((await claim.closed).code, 4001);

  // With the victim's public key, her signature does not verify.
  await using claim2 = await RawPeer.open(server.url);
  const challenge2 = await claim2.next();
  const theirs = await authFrame(victim, server.host, "unused");
  const mine = await authFrame(
    mallory,
    server.host,
    String(challenge2.nonce),
  );
  claim2.send({ ...theirs, sig: mine.sig });
  strictEqual((await claim2.closed).code, 4001);

  // An RSA key, whose peer ID does not embed it, is checked the same way.
  const rsa = identityFromPrivateKey(await generateKeyPair("RSA", 1024));
  await using rsaClient = await client(server.url, rsa);
  strictEqual(rsaClient.peerId.toString(), rsa.peerId.toString());

  // The victim's registration is untouched: Carol reaches the victim.
  await using c = await client(server.url, carol);
  const toVictim = c.dial(victim.peerId);
  await toVictim.send(OFFER);
  const incoming = await bounded(owner.accept(), "the victim's attempt");
  strictEqual(incoming.remotePeer, carol.peerId.toString());
  deepStrictEqual(await incoming.channel.receive(), OFFER);
  await toVictim.close();
  await incoming.channel.close();
});

Deno.test("rendezvous auth: a signature replayed on another connection, or made for another server, is refused", async () => {
  await using server = startRendezvous();
  const identity = await generateIdentity();

  // A good auth on one connection...
  await using first = await RawPeer.open(server.url);
  const challenge = await first.next();
  const good = await authFrame(identity, server.host, String(challenge.nonce));
  first.send(good);
  strictEqual((await first.next()).type, "ready");
  // ...replayed on another, whose nonce differs.
  await using replay = await RawPeer.open(server.url);
  await replay.next();
  replay.send(good);
  strictEqual((await replay.closed).code, 4001);

  // Signed for another host: a server that relays its challenge to a peer
  // cannot use the signature here.
  await using relayed = await RawPeer.open(server.url);
  const nonce = String((await relayed.next()).nonce);
  relayed.send(await authFrame(identity, "evil.example:443", nonce));
  strictEqual((await relayed.closed).code, 4001);

  // A client that thinks it talks to another host fails the same way.
  const elsewhere = startRendezvous({ host: "rendezvous.example" });
  try {
    await rejects(client(elsewhere.url, identity), closedWith("auth-failed"));
  } finally {
    await elsewhere[Symbol.asyncDispose]();
  }
});

Deno.test("rendezvous auth: no auth in time (4002), or another frame first (4006)", async () => {
  await using server = startRendezvous({ authTimeout: 200 });
  await using silent = await RawPeer.open(server.url);
  strictEqual((await silent.next()).type, "challenge");
  strictEqual((await silent.closed).code, 4002);

  await using eager = await RawPeer.open(server.url);
  await eager.next();
  eager.send({ type: "ping" });
  strictEqual((await eager.closed).code, 4006);
});

Deno.test("rendezvous auth: a server that speaks another protocol fails connect with a typed error", async () => {
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => {
      const { socket, response } = Deno.upgradeWebSocket(request);
      socket.onopen = () => socket.send('{"type":"hello","v":9}');
      return response;
    },
  );
  await rejects(
    client(`ws://127.0.0.1:${server.addr.port}`, await generateIdentity()),
    closedWith("protocol-violation"),
  );
});

Deno.test("rendezvous auth: the connect timeout and signal bound a server that never answers", async () => {
  const sockets: WebSocket[] = [];
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => {
      const { socket, response } = Deno.upgradeWebSocket(request);
      sockets.push(socket);
      return response;
    },
  );
  const url = `ws://127.0.0.1:${server.addr.port}`;
  const identity = await generateIdentity();
  await rejects(
    RendezvousClient.connect(url, { identity, timeout: 200 }),
    TimeoutError,
  );
  const controller = new AbortController();
  const connecting = RendezvousClient.connect(url, {
    identity,
    signal: controller.signal,
  });
  controller.abort(new Error("given up"));
  await rejects(connecting, /given up/);
  await rejects(
    client("ws://127.0.0.1:1", identity),
    closedWith("connection-lost"),
  );
  for (const socket of sockets) socket.close();
});

// ---------------------------------------------------------------------------
// What one peer can do to another

Deno.test("rendezvous: the server stamps the sender; a spoofed frame cannot reach another peer's attempt", async () => {
  await using server = startRendezvous();
  const [ida, idb, idm] = await identities(3);
  await using alice = await client(server.url, ida);
  await using bob = await RawPeer.authenticated(server.url, idb, server.host);
  await using mallory = await RawPeer.authenticated(
    server.url,
    idm,
    server.host,
  );
  const toBob = alice.dial(idb.peerId);
  await toBob.send(OFFER);
  const open = await bob.nextNotPong();
  deepStrictEqual(
    { ...open },
    {
      type: "recv",
      from: ida.peerId.toString(),
      attempt: open.attempt,
      dialer: true,
      op: "open",
    },
  );
  strictEqual((await bob.nextNotPong()).op, "data");

  // Mallory knows the attempt id and answers for Bob, claiming his ID.
  mallory.send({
    type: "send",
    to: ida.peerId.toString(),
    from: idb.peerId.toString(),
    attempt: open.attempt,
    dialer: false,
    op: "data",
    data: { type: "answer", sdp: "v=0\r\ns=evil\r\n" },
  });
  // Bob's real answer comes after it, and is what Alice gets.
  bob.send({
    type: "send",
    to: ida.peerId.toString(),
    attempt: open.attempt,
    dialer: false,
    op: "data",
    data: ANSWER,
  });
  deepStrictEqual(await toBob.receive(), ANSWER);
  // Mallory's frame reached Alice as hers, for an attempt Alice never made
  // with her, and was dropped.
  strictEqual(alice.attempts, 1);

  // Nothing addressed to Bob reached Mallory: the next frame she gets is
  // the first one anyone sends her.
  const toMallory = alice.dial(idm.peerId);
  const first = await mallory.nextNotPong();
  strictEqual(first.from, ida.peerId.toString());
  strictEqual(first.attempt !== open.attempt, true);
  strictEqual(first.op, "open");

  // A frame typed as if from the server is not for clients to send.
  mallory.send({ type: "recv", from: idb.peerId.toString(), attempt: "x" });
  strictEqual((await mallory.closed).code, 4006);
  toMallory.abort();
  toBob.abort();
});

Deno.test("rendezvous: an unknown target fails the attempt with PeerUnreachableError", async () => {
  await using server = startRendezvous();
  await using alice = await client(server.url, await generateIdentity());
  const nobody = await generateIdentity();
  const channel = alice.dial(nobody.peerId);
  await rejects(channel.receive(), unreachable("not-registered"));
  await rejects(channel.send(OFFER), unreachable("not-registered"));
  strictEqual(alice.attempts, 0);
  throws(
    () => alice.dial("not-a-peer-id"),
    (e: unknown) =>
      e instanceof P2prtcError && e.code === "ERR_INVALID_PEER_ID",
  );
});

Deno.test("rendezvous: a peer that disconnects fails the attempts with it, accepted or not", async () => {
  await using server = startRendezvous();
  const [ida, idb] = await identities(2);
  await using alice = await client(server.url, ida);
  const bob = await client(server.url, idb);
  const accepted = alice.dial(idb.peerId);
  await accepted.send(OFFER);
  const waiting = alice.dial(idb.peerId);
  const incoming = await bounded(bob.accept(), "bob's attempt");
  deepStrictEqual(await incoming.channel.receive(), OFFER);
  await bob.close();
  await rejects(incoming.channel.receive(), closedWith("closed"));
  await rejects(accepted.receive(), unreachable("disconnected"));
  await rejects(waiting.receive(), unreachable("disconnected"));
  strictEqual(alice.attempts, 0);
  await rejects(bob.accept(), closedWith("closed"));
  throws(() => bob.dial(ida.peerId), closedWith("closed"));
});

Deno.test("rendezvous: the same peer connecting again replaces its first connection (4004)", async () => {
  await using server = startRendezvous();
  const [ida, idb] = await identities(2);
  await using first = await client(server.url, idb);
  await using second = await client(server.url, idb);
  strictEqual(
    (await bounded(first.closed, "the first to close")).reason,
    "replaced",
  );
  await using alice = await client(server.url, ida);
  const toBob = alice.dial(idb.peerId);
  await toBob.send(OFFER);
  const incoming = await bounded(second.accept(), "the attempt");
  deepStrictEqual(await incoming.channel.receive(), OFFER);
  toBob.abort();
  await rejects(incoming.channel.receive(), SignalingAbortedError);
});

// ---------------------------------------------------------------------------
// Limits

Deno.test("rendezvous limits: an oversized SDP or candidate is refused by the client; the attempt goes on", async () => {
  await using server = startRendezvous();
  const [ida, idb] = await identities(2);
  await using alice = await client(server.url, ida);
  await using bob = await client(server.url, idb);
  const toBob = alice.dial(idb.peerId);
  await rejects(
    toBob.send({ type: "offer", sdp: "a".repeat(70_000) }),
    (e: unknown) =>
      e instanceof SignalingMessageTooLargeError && e.limit === 63 * 1024 &&
      e.size > 70_000,
  );
  await rejects(
    toBob.send({
      type: "candidate",
      candidate: { candidate: "é".repeat(40_000), sdpMid: "0" },
    }),
    SignalingMessageTooLargeError,
  );
  await toBob.send(OFFER);
  const incoming = await bounded(bob.accept(), "the attempt");
  deepStrictEqual(await incoming.channel.receive(), OFFER);
  await toBob.close();
  strictEqual(await incoming.channel.receive(), null);
  await incoming.channel.close();
});

Deno.test("rendezvous limits: a frame over the server's limit closes that connection (1009), and only it", async () => {
  await using server = startRendezvous();
  const [ida, idb, idm] = await identities(3);
  await using alice = await client(server.url, ida);
  await using bob = await client(server.url, idb);
  await using mallory = await RawPeer.authenticated(
    server.url,
    idm,
    server.host,
  );
  mallory.send({
    type: "send",
    to: ida.peerId.toString(),
    attempt: "big",
    dialer: true,
    op: "data",
    data: { type: "offer", sdp: "a".repeat(70_000) },
  });
  strictEqual((await mallory.closed).code, 1009);
  // The others go on.
  const toBob = alice.dial(idb.peerId);
  await toBob.send(OFFER);
  deepStrictEqual(
    await (await bounded(bob.accept(), "the attempt")).channel.receive(),
    OFFER,
  );
  strictEqual(alice.attempts, 1);
  toBob.abort();
});

Deno.test("rendezvous limits: a frame over the client's limit fails that attempt alone", async () => {
  // The server allows more than the client: the client's own check decides.
  await using server = startRendezvous({ maxFrameSize: 256 * 1024 });
  const [ida, idm] = await identities(2);
  await using alice = await client(server.url, ida, {
    maxFrameSize: 32 * 1024,
  });
  await using mallory = await RawPeer.authenticated(
    server.url,
    idm,
    server.host,
  );
  const send = sendAs(mallory, ida);
  send("a1", "open");
  send("a2", "open");
  send("a1", "data", { type: "offer", sdp: "a".repeat(100_000) });
  send("a2", "data", OFFER);
  const first = await bounded(alice.accept(), "a1");
  const second = await bounded(alice.accept(), "a2");
  await rejects(
    first.channel.receive(),
    (e: unknown) =>
      e instanceof SignalingMessageTooLargeError && e.limit === 32 * 1024,
  );
  deepStrictEqual(await second.channel.receive(), OFFER);
  // Mallory is told the first attempt failed.
  const abort = await mallory.nextNotPong();
  deepStrictEqual(
    [abort.attempt, abort.op, abort.reason],
    ["a1", "abort", "ERR_SIGNALING_MESSAGE_TOO_LARGE"],
  );
  await second.channel.close();
});

Deno.test("rendezvous limits: a client over the frame rate is closed (4005); the others go on", async () => {
  await using server = startRendezvous({
    messageBurst: 20,
    messagesPerSecond: 1,
  });
  const [ida, idb, idc] = await identities(3);
  await using alice = await client(server.url, ida);
  await using bob = await client(server.url, idb);
  await using carol = await client(server.url, idc);
  const toBob = alice.dial(idb.peerId);
  for (let i = 0; i < 40; i++) {
    // Sends fail once the socket is closing; the close says why.
    await toBob.send(CANDIDATE).catch(() => {});
  }
  strictEqual(
    (await bounded(alice.closed, "alice to be closed")).reason,
    "rate-limited",
  );
  await rejects(toBob.send(CANDIDATE), closedWith("rate-limited"));
  const toCarol = bob.dial(idc.peerId);
  await toCarol.send(OFFER);
  deepStrictEqual(
    await (await bounded(carol.accept(), "carol's attempt")).channel.receive(),
    OFFER,
  );
  toCarol.abort();
});

Deno.test("rendezvous limits: attempts past maxPendingAttempts are aborted as busy; dials past maxAttempts throw", async () => {
  await using server = startRendezvous();
  const [ida, idb] = await identities(2);
  await using alice = await client(server.url, ida, { maxAttempts: 3 });
  await using bob = await client(server.url, idb, { maxPendingAttempts: 2 });
  const attempts = [
    alice.dial(idb.peerId),
    alice.dial(idb.peerId),
    alice.dial(idb.peerId),
  ];
  throws(
    () => alice.dial(idb.peerId),
    (e: unknown) =>
      e instanceof P2prtcError && e.code === "ERR_RENDEZVOUS_TOO_MANY_ATTEMPTS",
  );
  await rejects(
    attempts[2].receive(),
    (e: unknown) =>
      e instanceof SignalingAbortedError && /busy/.test(String(e.cause)),
  );
  // Room again: a new dial is allowed and accepted once Bob takes one.
  await (await bounded(bob.accept(), "the first")).channel.close();
  const fourth = alice.dial(idb.peerId);
  await fourth.send(OFFER);
  await bounded(bob.accept(), "the second");
  const last = await bounded(bob.accept(), "the fourth");
  deepStrictEqual(await last.channel.receive(), OFFER);
  for (const a of [...attempts, fourth]) a.abort();
});

Deno.test("rendezvous limits: an attempt open too long is aborted with TimeoutError at both ends", async () => {
  await using server = startRendezvous();
  const [ida, idb] = await identities(2);
  await using alice = await client(server.url, ida, { attemptTimeout: 300 });
  await using bob = await client(server.url, idb);
  const toBob = alice.dial(idb.peerId);
  const incoming = await bounded(bob.accept(), "the attempt");
  await rejects(toBob.receive(), TimeoutError);
  await rejects(
    incoming.channel.receive(),
    (e: unknown) =>
      e instanceof SignalingAbortedError && /ERR_TIMEOUT/.test(String(e.cause)),
  );
  strictEqual(alice.attempts + bob.attempts, 0);
});

Deno.test("rendezvous limits: a silent connection is closed (4003); a client's heartbeat keeps it open", async () => {
  await using server = startRendezvous({ idleTimeout: 300 });
  const [ida, idb] = await identities(2);
  await using silent = await RawPeer.authenticated(
    server.url,
    ida,
    server.host,
  );
  strictEqual((await silent.closed).code, 4003);
  await using alive = await client(server.url, idb);
  await delay(900);
  strictEqual(await isSettled(alive.closed), false);
});

// ---------------------------------------------------------------------------
// Garbage

Deno.test("rendezvous garbage: a malformed signalling message fails its attempt alone", async () => {
  await using server = startRendezvous();
  const [ida, idm] = await identities(2);
  await using alice = await client(server.url, ida);
  await using mallory = await RawPeer.authenticated(
    server.url,
    idm,
    server.host,
  );
  const send = sendAs(mallory, ida);
  const garbage = [
    { type: "offer", sdp: 42 },
    { type: "candidate", candidate: { sdpMid: "0" } },
    { type: "candidate", candidate: { candidate: "c", sdpMLineIndex: -1 } },
    { type: "rollback" },
    "offer",
  ];
  send("good", "open");
  send("good", "data", OFFER);
  const good = await bounded(alice.accept(), "good");
  for (let i = 0; i < garbage.length; i++) {
    // Accepted first: an attempt that fails while waiting to be accepted is
    // dropped, and nobody would see its error.
    send(`bad${i}`, "open");
    const { channel } = await bounded(alice.accept(), `bad${i}`);
    send(`bad${i}`, "data", garbage[i]);
    await rejects(channel.receive(), MalformedSignalingMessageError);
    const abort = await mallory.nextNotPong();
    deepStrictEqual(
      [abort.attempt, abort.op, abort.reason],
      [`bad${i}`, "abort", "ERR_SIGNALING_MALFORMED"],
    );
  }
  deepStrictEqual(await good.channel.receive(), OFFER);
  strictEqual(alice.attempts, 1);
  strictEqual(await isSettled(alice.closed), false);
  await good.channel.close();
});

Deno.test("rendezvous garbage: frames that are not the protocol close the sender's connection (4006), and only it", async () => {
  await using server = startRendezvous();
  const [ida, idb] = await identities(2);
  await using alice = await client(server.url, ida);
  const garbage: unknown[] = [
    "not json",
    "[1,2,3]",
    {
      type: "send",
      to: "not a peer id",
      attempt: "a",
      dialer: true,
      op: "open",
    },
    {
      type: "send",
      to: ida.peerId.toString(),
      attempt: "a b",
      dialer: true,
      op: "open",
    },
    {
      type: "send",
      to: ida.peerId.toString(),
      attempt: "a",
      dialer: "yes",
      op: "open",
    },
    {
      type: "send",
      to: ida.peerId.toString(),
      attempt: "a",
      dialer: true,
      op: "wave",
    },
    {
      type: "send",
      to: ida.peerId.toString(),
      attempt: "a",
      dialer: true,
      op: "data",
    },
    { type: "whatever" },
  ];
  for (const frame of garbage) {
    await using raw = await RawPeer.authenticated(server.url, idb, server.host);
    raw.send(frame);
    deepStrictEqual(
      [(await raw.closed).code, JSON.stringify(frame)],
      [4006, JSON.stringify(frame)],
    );
  }
  await using binary = await RawPeer.authenticated(
    server.url,
    idb,
    server.host,
  );
  binary.ws.send(new Uint8Array([1, 2, 3]));
  strictEqual((await binary.closed).code, 4006);
  strictEqual(await isSettled(alice.closed), false);
  strictEqual(alice.attempts, 0);
});

Deno.test("rendezvous garbage: what a server sends that is not the protocol is ignored, or fails its attempt alone", async () => {
  const peer = (await generateIdentity()).peerId.toString();
  const frames: unknown[] = [
    "not json",
    "[]",
    { type: "recv" },
    { type: "recv", from: peer, attempt: "a/b", dialer: true, op: "open" },
    { type: "recv", from: 7, attempt: "x", dialer: true, op: "open" },
    { type: "news", text: "from a newer server" },
    { type: "gone" },
    { type: "error", code: "peer-not-found" },
    // Data for an attempt never opened: dropped.
    {
      type: "recv",
      from: peer,
      attempt: "ghost",
      dialer: true,
      op: "data",
      data: OFFER,
    },
    { type: "recv", from: peer, attempt: "bad", dialer: true, op: "open" },
    { type: "recv", from: peer, attempt: "good", dialer: true, op: "open" },
    {
      type: "recv",
      from: peer,
      attempt: "bad",
      dialer: true,
      op: "data",
      data: { type: "answer" },
    },
    {
      type: "recv",
      from: peer,
      attempt: "good",
      dialer: true,
      op: "data",
      data: OFFER,
    },
    { type: "recv", from: peer, attempt: "good", dialer: true, op: "end" },
    { type: "recv", from: peer, attempt: "ugly", dialer: true, op: "open" },
    { type: "recv", from: peer, attempt: "ugly", dialer: true, op: "dance" },
  ];
  const sockets: WebSocket[] = [];
  const received: unknown[] = [];
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => {
      const { socket, response } = Deno.upgradeWebSocket(request);
      sockets.push(socket);
      socket.onopen = () =>
        socket.send(JSON.stringify({
          type: "challenge",
          v: 1,
          nonce: "A".repeat(43),
        }));
      socket.onmessage = (event) => {
        const frame = JSON.parse(event.data);
        received.push(frame);
        if (frame.type !== "auth") return;
        // This server checks nothing.
        socket.send(JSON.stringify({
          type: "ready",
          peer: frame.peer,
          heartbeat: 10_000,
        }));
        for (const f of frames) {
          socket.send(typeof f === "string" ? f : JSON.stringify(f));
        }
      };
      return response;
    },
  );
  await using alice = await client(
    `ws://127.0.0.1:${server.addr.port}`,
    await generateIdentity(),
  );
  const bad = await bounded(alice.accept(), "bad");
  const good = await bounded(alice.accept(), "good");
  const ugly = await bounded(alice.accept(), "ugly");
  strictEqual(bad.remotePeer, peer);
  await rejects(bad.channel.receive(), MalformedSignalingMessageError);
  await rejects(ugly.channel.receive(), MalformedSignalingMessageError);
  deepStrictEqual(await good.channel.receive(), OFFER);
  strictEqual(await good.channel.receive(), null);
  await good.channel.close();
  strictEqual(alice.attempts, 0);
  strictEqual(await isSettled(alice.closed), false);
  // The two bad attempts were aborted towards the peer, with a code only.
  const aborts = received.filter((f) =>
    (f as { op?: string }).op === "abort"
  ) as { attempt: string; reason: string }[];
  await bounded(
    (async () => {
      while (received.filter((f) => (f as { op?: string }).op).length < 3) {
        await delay(10);
      }
    })(),
    "the aborts and the end",
  );
  deepStrictEqual(
    received.filter((f) => (f as { op?: string }).op === "abort").map((f) =>
      (f as { attempt: string }).attempt
    ).sort(),
    ["bad", "ugly"],
  );
  ok(aborts.every((f) => f.reason === "ERR_SIGNALING_MALFORMED"));
  await alice.close();
  for (const socket of sockets) socket.close();
});

// ---------------------------------------------------------------------------
// Several instances

Deno.test("rendezvous instances: two handlers on one memory engine relay between their ports", async () => {
  const engine = memoryEngine();
  await using one = startRendezvous({ engine });
  await using two = startRendezvous({ engine });
  await relayBetween(one.url, two.url);
});

/**
 * Alice on `urlA`, Bob on `urlB`: an attempt each way, a peer not connected
 * anywhere, a disconnect seen across, and Bob connecting again elsewhere.
 */
async function relayBetween(urlA: string, urlB: string): Promise<void> {
  const [ida, idb] = await identities(2);
  await using alice = await client(urlA, ida);
  await using bob = await client(urlB, idb);
  const toBob = alice.dial(idb.peerId);
  await toBob.send(OFFER);
  await toBob.send(CANDIDATE);
  const incoming = await bounded(bob.accept(), "bob's attempt");
  strictEqual(incoming.remotePeer, ida.peerId.toString());
  deepStrictEqual(await incoming.channel.receive(), OFFER);
  deepStrictEqual(await incoming.channel.receive(), CANDIDATE);
  await incoming.channel.send(ANSWER);
  await incoming.channel.close();
  deepStrictEqual(await toBob.receive(), ANSWER);
  strictEqual(await toBob.receive(), null);
  await toBob.close();

  const toAlice = bob.dial(ida.peerId);
  await toAlice.send(OFFER);
  const back = await bounded(alice.accept(), "alice's attempt");
  strictEqual(back.remotePeer, idb.peerId.toString());
  deepStrictEqual(await back.channel.receive(), OFFER);

  const nobody = alice.dial((await generateIdentity()).peerId);
  await rejects(nobody.receive(), unreachable("not-registered"));

  // Bob connects again through Alice's instance: his first connection is
  // replaced, and the attempt on it fails at Alice's end.
  await using again = await client(urlA, idb);
  strictEqual(
    (await bounded(bob.closed, "the first bob to close")).reason,
    "replaced",
  );
  await rejects(back.channel.receive(), unreachable("disconnected"));
  const toNewBob = alice.dial(idb.peerId);
  await toNewBob.send(OFFER);
  const third = await bounded(again.accept(), "the new bob's attempt");
  deepStrictEqual(await third.channel.receive(), OFFER);
  toNewBob.abort();
}

/** The next message from `worker` that has `key`, bounded. */
function fromWorker<T>(worker: Worker, key: string): Promise<T> {
  return bounded(
    new Promise<T>((resolve) => {
      worker.onmessage = (event) => {
        if (key in event.data) resolve(event.data[key]);
      };
    }),
    `the worker's ${key}`,
  );
}

Deno.test("rendezvous instances: two servers in two workers share Deno KV; peers on different instances meet", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2prtc-rendezvous-" });
  const kvPath = `${dir}/rendezvous.sqlite`;
  const workers: Worker[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < 2; i++) {
      const worker = new Worker(
        new URL("./rendezvous_instance_worker.ts", import.meta.url),
        { type: "module" },
      );
      workers.push(worker);
      const port = fromWorker<number>(worker, "port");
      worker.postMessage({ kvPath });
      ports.push(await port);
    }
    ok(ports[0] !== ports[1]);
    await relayBetween(
      `ws://127.0.0.1:${ports[0]}`,
      `ws://127.0.0.1:${ports[1]}`,
    );
  } finally {
    for (const worker of workers) {
      const stopped = fromWorker<boolean>(worker, "stopped");
      worker.postMessage("stop");
      await stopped.catch(() => {});
      worker.terminate();
    }
    await Deno.remove(dir, { recursive: true });
  }
});

/** Starts `examples/rendezvous_server.ts` and returns it and its URL. */
async function rendezvousProcess(
  env: Record<string, string>,
): Promise<{ child: Deno.ChildProcess; url: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--allow-net=127.0.0.1",
      "--allow-env",
      "--allow-read",
      "--allow-write",
      "--unstable-kv",
      `--config=${new URL("../deno.json", import.meta.url).pathname}`,
      new URL("../examples/rendezvous_server.ts", import.meta.url).pathname,
    ],
    env: { PORT: "0", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  try {
    const match = await bounded(
      (async () => {
        while (true) {
          const { value, done } = await lines.read();
          if (done) throw new Error(`the server exited: ${text}`);
          text += value;
          const found = /listening on (ws:\/\/127\.0\.0\.1:\d+)\//.exec(text);
          if (found) return found;
        }
      })(),
      "the server to listen",
    );
    return { child, url: match[1] };
  } catch (error) {
    child.kill("SIGKILL");
    await child.status;
    throw error;
  } finally {
    await lines.cancel();
  }
}

/** Stops a server process with SIGINT and checks it exits cleanly. */
async function stopProcess(child: Deno.ChildProcess): Promise<void> {
  child.kill("SIGINT");
  const timer = setTimeout(() => child.kill("SIGKILL"), STEP_MS);
  try {
    const status = await child.status;
    deepStrictEqual([status.code, status.signal], [0, null]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("rendezvous instances: two server processes share a Deno KV file; peers on different instances meet", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2prtc-rendezvous-" });
  const env = {
    RENDEZVOUS_KV: `${dir}/rendezvous.sqlite`,
    // kv.watch does not cross processes on a local file: they poll.
    RENDEZVOUS_POLL_MS: "50",
  };
  const started: Deno.ChildProcess[] = [];
  try {
    const one = await rendezvousProcess(env);
    started.push(one.child);
    const two = await rendezvousProcess(env);
    started.push(two.child);
    ok(one.url !== two.url);
    await relayBetween(one.url, two.url);
    for (const child of started.splice(0)) await stopProcess(child);
  } finally {
    for (const child of started) {
      child.kill("SIGKILL");
      await child.status;
    }
    await Deno.remove(dir, { recursive: true });
  }
});
