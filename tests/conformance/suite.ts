/**
 * The backend conformance suite: the same cases for any pair of
 * {@linkcode PeerConnectionBackend}s, over real connections on loopback with
 * no ICE server.
 *
 * Every case makes a fresh pair of backends, closes every peer connection it
 * made whatever happens, then waits (bounded) until both backends report no
 * open handle and asserts so: Deno's sanitizers cannot see native handles.
 *
 * Bounds, documented: each case has {@linkcode CASE_MS} (the 64 MiB transfer
 * {@linkcode TRANSFER_MS}) for everything; a peer that closes is noticed
 * within {@linkcode CLOSE_DETECT_MS}; a peer that vanishes (SIGKILL, so no
 * SCTP ABORT and no DTLS alert) within the backend's own bound, given in
 * {@linkcode VanishingPeer.boundMs} (libdatachannel: about 14 s with data in
 * flight, from SCTP's retransmission limit; about 30 s idle, from ICE
 * consent freshness).
 *
 * A test helper, not shipped.
 *
 * @module
 */

import {
  deepStrictEqual,
  notStrictEqual,
  ok,
  strictEqual,
} from "node:assert/strict";
import type {
  CertificateFingerprint,
  DataChannel,
  IceCredentials,
  PeerConnection,
  PeerConnectionBackend,
  PeerConnectionState,
} from "../../core/backend.ts";
import { TimeoutError } from "../../core/errors.ts";
import { CERTIFICATE_1, CERTIFICATE_2 } from "./certificates.ts";
import {
  Closer,
  connect,
  type Connected,
  type ConnectOptions,
  isLoopback,
  LOOPBACK,
  waitFor,
  whenClosed,
  whenConnected,
  whenOpen,
} from "./connect.ts";
import type { PeerMessage } from "./vanishing_peer.ts";

/** Each case, connection included, must finish within this. */
export const CASE_MS = 20_000;
/** The bound of the 64 MiB transfer case. */
export const TRANSFER_MS = 60_000;
/** A peer's clean close must be noticed within this. */
export const CLOSE_DETECT_MS = 10_000;
/** Handles must be back to zero within this after everything is closed. */
export const SETTLE_MS = 10_000;

const NOTHING_OPEN = { peerConnections: 0, dataChannels: 0 };
const MAX_MESSAGE = 16384;
const BIG_TRANSFER = 64 * 1024 * 1024;
const HIGH_WATER = 1024 * 1024;
const LOW_WATER = 256 * 1024;
const CHANNELS = 256;

/** Two backends: `a` offers, `b` answers. They may be the same object. */
export interface BackendPair {
  /** The offering side's backend. */
  a: PeerConnectionBackend;
  /** The answering side's backend. */
  b: PeerConnectionBackend;
}

/** How to run the answering backend in a process of its own. */
export interface VanishingPeer {
  /** The module exporting the backend factory, as a URL. */
  module: URL;
  /** The factory's export name; it returns a backend or a promise of one. */
  factory: string;
  /** `deno run` permission flags the backend needs. */
  permissions: string[];
  /** How long the survivor may take to notice, in milliseconds. */
  boundMs: number;
}

/** What differs between backends. */
export interface SuiteOptions {
  /**
   * Waits until a backend has really stopped, after its handles are zero
   * (for example werift's timers). Default: nothing more.
   */
  settle?: (
    backend: PeerConnectionBackend,
    signal: AbortSignal,
  ) => Promise<void>;
  /** Whether both backends take the `certificate` option. Default: `true`. */
  certificates?: boolean;
  /**
   * How to run the answering backend in a subprocess for the vanishing-peer
   * case; without it that case is ignored.
   */
  vanishingPeer?: VanishingPeer;
}

/** What a case gets. */
interface CaseContext {
  backends: BackendPair;
  closer: Closer;
  signal: AbortSignal;
  connect(options?: Partial<ConnectOptions>): Promise<Connected>;
}

/** A message of `size` bytes whose content depends on `seed` and position. */
export function pattern(size: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) {
    bytes[i] = (seed * 131 + i * 7 + (i >>> 8) * 13) & 0xff;
  }
  return bytes;
}

/** Fills `chunk` with the content of chunk number `index` of a transfer. */
function fillChunk(chunk: Uint8Array, index: number): void {
  const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  const base = Math.imul(index, 0x9e3779b1);
  for (let i = 0; i + 4 <= chunk.byteLength; i += 4) {
    view.setUint32(i, Math.imul(base ^ i, 0x85ebca6b) >>> 0);
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

function hex(digest: Uint8Array): string {
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0"))
    .join(":").toUpperCase();
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls until both backends report nothing open, or throws. */
async function settleHandles(
  backends: BackendPair,
  options: SuiteOptions,
): Promise<void> {
  const deadline = Date.now() + SETTLE_MS;
  const list = backends.a === backends.b
    ? [backends.a]
    : [backends.a, backends.b];
  for (const backend of list) {
    while (
      !(backend.openHandles().peerConnections === 0 &&
        backend.openHandles().dataChannels === 0)
    ) {
      if (Date.now() > deadline) {
        throw new TimeoutError(
          `${backend.name} still has open handles: ${
            JSON.stringify(backend.openHandles())
          }`,
        );
      }
      await sleep(10);
    }
  }
  if (options.settle) {
    const signal = AbortSignal.timeout(SETTLE_MS);
    for (const backend of list) await options.settle(backend, signal);
  }
  for (const backend of list) {
    deepStrictEqual(backend.openHandles(), NOTHING_OPEN, backend.name);
  }
}

/** Collects the channels the peer opens, to wait for them by number. */
function inbound(pc: PeerConnection): {
  channels: DataChannel[];
  count(n: number, signal: AbortSignal): Promise<DataChannel[]>;
} {
  const channels: DataChannel[] = [];
  let wake: (() => void) | null = null;
  pc.ondatachannel = (channel) => {
    channels.push(channel);
    wake?.();
  };
  return {
    channels,
    count: (n, signal) =>
      waitFor(`${n} inbound channel(s)`, signal, (done) => {
        const check = () => {
          if (channels.length >= n) done(channels.slice(0, n));
        };
        wake = check;
        check();
        return () => {
          wake = null;
        };
      }),
  };
}

/** Collects messages of a channel, to wait for them by number. */
function inbox(channel: DataChannel): {
  messages: Uint8Array[];
  count(n: number, signal: AbortSignal): Promise<Uint8Array[]>;
} {
  const messages: Uint8Array[] = [];
  let wake: (() => void) | null = null;
  channel.onmessage = (data) => {
    messages.push(data.slice());
    wake?.();
  };
  return {
    messages,
    count: (n, signal) =>
      waitFor(`${n} message(s)`, signal, (done) => {
        const check = () => {
          if (messages.length >= n) done(messages.slice(0, n));
        };
        wake = check;
        check();
        return () => {
          wake = null;
        };
      }),
  };
}

/** Resolves when `pc` reaches one of `states`. */
function whenState(
  pc: PeerConnection,
  states: PeerConnectionState[],
  signal: AbortSignal,
): Promise<PeerConnectionState> {
  return waitFor(`state ${states.join("/")}`, signal, (done) => {
    if (states.includes(pc.connectionState)) return done(pc.connectionState);
    const previous = pc.onconnectionstatechange;
    pc.onconnectionstatechange = (state) => {
      previous?.(state);
      if (states.includes(state)) done(state);
    };
  });
}

/**
 * Resolves with the first of several waits; the others are stopped and
 * their rejections swallowed, so nothing rejects unobserved later.
 */
async function firstOf<T>(
  signal: AbortSignal,
  ...waits: ((signal: AbortSignal) => Promise<T>)[]
): Promise<T> {
  const stop = new AbortController();
  const either = AbortSignal.any([signal, stop.signal]);
  const promises = waits.map((wait) => wait(either));
  for (const promise of promises) promise.catch(() => {});
  try {
    return await Promise.race(promises);
  } finally {
    stop.abort();
  }
}

/** ICE credentials as libp2p's WebRTC-Direct dialer makes them. */
function libp2pCredentials(): IceCredentials {
  const random = crypto.getRandomValues(new Uint8Array(16));
  const ufrag = "libp2p+webrtc+v1/" +
    Array.from(random, (b) => b.toString(16).padStart(2, "0")).join("");
  return { ufrag, pwd: ufrag };
}

/**
 * Registers the conformance cases with `Deno.test`, named
 * `<label>: <case>`. `makePair` is called once per case.
 */
export function conformanceSuite(
  label: string,
  makePair: () => BackendPair | Promise<BackendPair>,
  options: SuiteOptions = {},
): void {
  function test(
    name: string,
    body: (context: CaseContext) => Promise<void>,
    extra: { timeoutMs?: number; ignore?: boolean } = {},
  ): void {
    Deno.test({
      name: `${label}: ${name}`,
      ignore: extra.ignore,
      async fn() {
        const backends = await makePair();
        const closer = new Closer();
        const signal = AbortSignal.timeout(extra.timeoutMs ?? CASE_MS);
        let failure: { error: unknown } | undefined;
        try {
          await body({
            backends,
            closer,
            signal,
            connect: (more) =>
              connect(backends.a, backends.b, closer, { signal, ...more }),
          });
        } catch (error) {
          failure = { error };
        }
        closer.closeAll();
        try {
          await settleHandles(backends, options);
        } catch (error) {
          // The case's own failure says more than a leak that follows it.
          failure ??= { error };
        }
        if (failure !== undefined) throw failure.error;
      },
    });
  }

  test("negotiated channel 0 opens on both sides with id 0", async (t) => {
    const { a0, b0 } = await t.connect();
    strictEqual(a0.id, 0);
    strictEqual(b0.id, 0);
    strictEqual(a0.label, "");
    strictEqual(a0.readyState, "open");
    strictEqual(b0.readyState, "open");
    // The counts see what is open, or the check after each case means little.
    const { a: backendA, b: backendB } = t.backends;
    const open = (kind: "peerConnections" | "dataChannels") =>
      backendA === backendB
        ? backendA.openHandles()[kind]
        : backendA.openHandles()[kind] + backendB.openHandles()[kind];
    strictEqual(open("peerConnections"), 2);
    strictEqual(open("dataChannels"), 2);
    const atA = inbox(a0);
    const atB = inbox(b0);
    a0.send(pattern(5, 1));
    b0.send(pattern(6, 2));
    deepStrictEqual(await atB.count(1, t.signal), [pattern(5, 1)]);
    deepStrictEqual(await atA.count(1, t.signal), [pattern(6, 2)]);
  });

  test("createOffer shows nothing until setLocalDescription", async (t) => {
    const a = t.closer.add(t.backends.a.createPeerConnection(LOOPBACK));
    const candidates: unknown[] = [];
    a.onicecandidate = (candidate) => candidates.push(candidate);
    a.createDataChannel("", { negotiated: true, id: 0 });
    const offer = await a.createOffer();
    strictEqual(offer.type, "offer");
    ok(
      /^a=fingerprint:sha-256 /m.test(offer.sdp),
      "the offer has a fingerprint",
    );
    // Read through a function: the assertion below would narrow the property.
    const local = () => a.localDescription;
    strictEqual(local(), null);
    strictEqual(a.connectionState, "new");
    await sleep(50);
    deepStrictEqual(candidates, []);
    await a.setLocalDescription(offer);
    strictEqual(local()?.type, "offer");
    await waitFor("a candidate", t.signal, (done) => {
      if (candidates.length > 0) return done(undefined);
      a.onicecandidate = () => done(undefined);
    });
  });

  test("in-band channels open and close, seen on both sides", async (t) => {
    const { a, b } = await t.connect();
    const atA = inbound(a);
    const atB = inbound(b);

    const fromA = a.createDataChannel("from-a");
    strictEqual(fromA.readyState, "connecting");
    const [seenByB] = await atB.count(1, t.signal);
    strictEqual(seenByB.label, "from-a");
    await Promise.all([whenOpen(fromA, t.signal), whenOpen(seenByB, t.signal)]);
    strictEqual(seenByB.id, fromA.id);

    const fromB = b.createDataChannel("from-b");
    const [seenByA] = await atA.count(1, t.signal);
    strictEqual(seenByA.label, "from-b");
    await Promise.all([whenOpen(fromB, t.signal), whenOpen(seenByA, t.signal)]);
    notStrictEqual(fromA.id, fromB.id);

    const replies = inbox(fromA);
    const requests = inbox(seenByB);
    fromA.send(pattern(3, 3));
    deepStrictEqual(await requests.count(1, t.signal), [pattern(3, 3)]);
    seenByB.send(pattern(4, 4));
    deepStrictEqual(await replies.count(1, t.signal), [pattern(4, 4)]);

    // No handler may run after onclose, whoever closed, nor from inside
    // send() or close().
    const late: string[] = [];
    let inCall = false;
    const call = (what: () => void) => {
      inCall = true;
      try {
        what();
      } finally {
        inCall = false;
      }
    };
    const watch = (channel: DataChannel, name: string) => {
      let closed = false;
      const check = (handler: string) => {
        if (closed) late.push(`${name}: ${handler} after onclose`);
        if (inCall) late.push(`${name}: ${handler} inside send/close`);
      };
      channel.onclose = () => {
        check("onclose");
        closed = true;
      };
      channel.onmessage = () => check("onmessage");
      channel.onopen = () => check("onopen");
      channel.onerror = () => check("onerror");
      channel.onbufferedamountlow = () => check("onbufferedamountlow");
    };
    watch(fromA, "fromA");
    watch(seenByB, "seenByB");
    watch(fromB, "fromB");
    watch(seenByA, "seenByA");

    fromA.bufferedAmountLowThreshold = 1;
    call(() => fromA.send(pattern(MAX_MESSAGE, 5)));
    call(() => seenByA.send(pattern(10, 6)));
    // The opener closes one; the receiver closes the other.
    call(() => fromA.close());
    call(() => fromA.close());
    call(() => seenByA.close());
    await Promise.all(
      [fromA, seenByB, fromB, seenByA].map((c) => whenClosed(c, t.signal)),
    );
    for (const channel of [fromA, seenByB, fromB, seenByA]) {
      strictEqual(channel.readyState, "closed");
      strictEqual(channel.bufferedAmount, 0);
    }
    let threw = false;
    try {
      call(() => fromA.send(pattern(1, 1)));
    } catch {
      threw = true;
    }
    ok(threw, "send on a closed channel throws");
    call(() => a.close());
    await sleep(50);
    deepStrictEqual(late, []);
  });

  test("messages of 1 B to 16 KiB arrive byte-exact and in order, both ways", async (t) => {
    const { a0, b0 } = await t.connect();
    const sizes = [1, 100, 1024, 4096, MAX_MESSAGE];
    const sent: Uint8Array[] = [];
    for (let round = 0; round < 20; round++) {
      for (const size of sizes) sent.push(pattern(size, sent.length));
    }
    const atA = inbox(a0);
    const atB = inbox(b0);
    // One buffer reused for every send: the backend must have copied it.
    const scratch = new Uint8Array(MAX_MESSAGE);
    for (const message of sent) {
      scratch.set(message);
      a0.send(scratch.subarray(0, message.byteLength));
      scratch.fill(0xee);
    }
    for (const message of sent) b0.send(message);
    const [atBDone, atADone] = await Promise.all([
      atB.count(sent.length, t.signal),
      atA.count(sent.length, t.signal),
    ]);
    for (let i = 0; i < sent.length; i++) {
      ok(equalBytes(atBDone[i], sent[i]), `message ${i} a→b`);
      ok(equalBytes(atADone[i], sent[i]), `message ${i} b→a`);
    }
  });

  test("64 MiB arrive byte-exact with backpressure", async (t) => {
    const { a, b } = await t.connect();
    const atB = inbound(b);
    const sender = a.createDataChannel("bulk");
    await whenOpen(sender, t.signal);
    const [receiver] = await atB.count(1, t.signal);

    const chunks = BIG_TRANSFER / MAX_MESSAGE;
    let received = 0;
    let mismatch: string | undefined;
    const expected = new Uint8Array(MAX_MESSAGE);
    const allReceived = waitFor<void>("64 MiB", t.signal, (done) => {
      receiver.onmessage = (data) => {
        if (mismatch === undefined) {
          fillChunk(expected, received);
          if (!equalBytes(data, expected)) {
            mismatch = `chunk ${received} (${data.byteLength} bytes) differs`;
          }
        }
        received++;
        if (received === chunks) done();
      };
    });

    // Awaited below; if the sending fails first it must not reject unseen.
    allReceived.catch(() => {});
    sender.bufferedAmountLowThreshold = LOW_WATER;
    strictEqual(sender.bufferedAmountLowThreshold, LOW_WATER);
    let lowEvents = 0;
    let wake: (() => void) | null = null;
    sender.onbufferedamountlow = () => {
      lowEvents++;
      wake?.();
    };
    const chunk = new Uint8Array(MAX_MESSAGE);
    let highest = 0;
    const started = performance.now();
    for (let i = 0; i < chunks; i++) {
      while (sender.bufferedAmount > HIGH_WATER) {
        await waitFor<void>("the low-water event", t.signal, (done) => {
          wake = done;
          return () => {
            wake = null;
          };
        });
      }
      fillChunk(chunk, i);
      sender.send(chunk);
      highest = Math.max(highest, sender.bufferedAmount);
    }
    await allReceived;
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `${label}: 64 MiB in ${seconds.toFixed(2)} s (${
        (64 / seconds).toFixed(0)
      } MiB/s), ${lowEvents} low-water events, highest bufferedAmount ${highest}`,
    );
    strictEqual(mismatch, undefined);
    strictEqual(received, chunks);
    ok(lowEvents > 0, "the low-water event fired");
    ok(
      highest <= HIGH_WATER + MAX_MESSAGE,
      `bufferedAmount stayed under the high-water mark (${highest})`,
    );
  }, { timeoutMs: TRANSFER_MS });

  test(`${CHANNELS} channels on one connection`, async (t) => {
    const { a, b } = await t.connect();
    const atB = inbound(b);
    const mine = Array.from(
      { length: CHANNELS },
      (_, i) => a.createDataChannel(`c${i}`),
    );
    await Promise.all(mine.map((c) => whenOpen(c, t.signal)));
    const theirs = await atB.count(CHANNELS, t.signal);
    const ids = new Set(mine.map((c) => c.id));
    strictEqual(ids.size, CHANNELS, "every channel has its own id");
    ok(!ids.has(null) && !ids.has(0), "ids are assigned, 0 is channel 0's");

    // Each receiver echoes; each opener checks its own label comes back.
    const encoder = new TextEncoder();
    for (const channel of theirs) {
      channel.onmessage = (data) => {
        try {
          channel.send(data);
        } catch {
          // Seen as a missing echo below.
        }
      };
    }
    const echoes = mine.map((c) => inbox(c));
    mine.forEach((c) => c.send(encoder.encode(c.label)));
    const answers = await Promise.all(echoes.map((e) => e.count(1, t.signal)));
    answers.forEach(([data], i) =>
      strictEqual(new TextDecoder().decode(data), mine[i].label)
    );

    // Half closed by the opener, half by the receiver.
    const byLabel = new Map(theirs.map((c) => [c.label, c]));
    mine.forEach((c, i) =>
      i % 2 === 0 ? c.close() : byLabel.get(c.label)!.close()
    );
    await Promise.all(
      [...mine, ...theirs].map((c) => whenClosed(c, t.signal)),
    );
    strictEqual(a.connectionState, "connected");
  });

  // A stream's two ends finish at about the same moment and both close the
  // channel, so one end's close can meet the other's stream reset in flight.
  // libdatachannel 0.24 then sometimes lost the closed callback (about one
  // close in 1200 with these gaps), leaving a handle open for good; its
  // backend now finishes such a channel itself. The gaps are busy waits of
  // up to 5 ms: timers are too coarse to land on the reset's arrival.
  test(
    "channels closed by both ends a moment apart all report closed",
    async (t) => {
      const { a, b } = await t.connect();
      const atB = inbound(b);
      const BURSTS = 20;
      const PAIRS = 40;
      for (let burst = 0; burst < BURSTS; burst++) {
        const mine = Array.from(
          { length: PAIRS },
          (_, i) => a.createDataChannel(`burst${burst}-${i}`),
        );
        await Promise.all(mine.map((c) => whenOpen(c, t.signal)));
        const theirs = (await atB.count((burst + 1) * PAIRS, t.signal))
          .slice(burst * PAIRS);
        const byLabel = new Map(theirs.map((c) => [c.label, c]));
        const all = [...mine, ...theirs];
        const closed = all.map((c) => whenClosed(c, t.signal));
        for (const c of mine) {
          c.close();
          const until = performance.now() + Math.random() * 5;
          while (performance.now() < until) {
            // The peer's reset may be arriving now.
          }
          byLabel.get(c.label)!.close();
        }
        await Promise.all(closed);
      }
      strictEqual(a.connectionState, "connected");
    },
    { timeoutMs: 60_000 },
  );

  test("both sides see the same fingerprints", async (t) => {
    const { a, b } = await t.connect();
    const check = (fingerprint: CertificateFingerprint | null) => {
      ok(fingerprint !== null, "a remote fingerprint once connected");
      strictEqual(fingerprint.algorithm, "sha-256");
      strictEqual(fingerprint.digest.byteLength, 32);
      return fingerprint;
    };
    const aLocal = await a.localFingerprint();
    const bLocal = await b.localFingerprint();
    deepStrictEqual(check(b.remoteFingerprint()), aLocal);
    deepStrictEqual(check(a.remoteFingerprint()), bLocal);
    // Still known once closed: the core may ask late.
    a.close();
    deepStrictEqual(a.remoteFingerprint(), bLocal);
  });

  test("the certificate option sets the DTLS certificate", async (t) => {
    const { a, b } = await t.connect({
      offerer: { ...LOOPBACK, certificate: CERTIFICATE_1.pem },
      answerer: { ...LOOPBACK, certificate: CERTIFICATE_2.pem },
    });
    strictEqual(
      hex((await a.localFingerprint()).digest),
      CERTIFICATE_1.fingerprint,
    );
    strictEqual(
      hex((await b.localFingerprint()).digest),
      CERTIFICATE_2.fingerprint,
    );
    strictEqual(hex(b.remoteFingerprint()!.digest), CERTIFICATE_1.fingerprint);
    strictEqual(hex(a.remoteFingerprint()!.digest), CERTIFICATE_2.fingerprint);
  }, { ignore: options.certificates === false });

  test("ICE credentials given with the local description are the ones used", async (t) => {
    const offerer = libp2pCredentials();
    const answerer = libp2pCredentials();
    const { a, b } = await t.connect({
      offererCredentials: offerer,
      answererCredentials: answerer,
    });
    const ufrag = (sdp: string) => /^a=ice-ufrag:(\S+)/m.exec(sdp)?.[1];
    const pwd = (sdp: string) => /^a=ice-pwd:(\S+)/m.exec(sdp)?.[1];
    strictEqual(ufrag(a.localDescription!.sdp), offerer.ufrag);
    strictEqual(pwd(a.localDescription!.sdp), offerer.pwd);
    strictEqual(ufrag(b.remoteDescription!.sdp), offerer.ufrag);
    strictEqual(ufrag(b.localDescription!.sdp), answerer.ufrag);
    strictEqual(pwd(b.localDescription!.sdp), answerer.pwd);
    strictEqual(ufrag(a.remoteDescription!.sdp), answerer.ufrag);
    // The fingerprint announced is the one DTLS used.
    deepStrictEqual(b.remoteFingerprint(), await a.localFingerprint());
  });

  test("candidates that arrive before the remote description are held", async (t) => {
    const { a0, b0 } = await t.connect({ candidatesFirst: true });
    const atB = inbox(b0);
    a0.send(pattern(7, 7));
    deepStrictEqual(await atB.count(1, t.signal), [pattern(7, 7)]);
  });

  test("the peer closing the connection is noticed, and closes the channels", async (t) => {
    const { a, b, b0 } = await t.connect();
    const atB = inbound(b);
    const inBand = a.createDataChannel("x");
    await whenOpen(inBand, t.signal);
    const [seen] = await atB.count(1, t.signal);
    await whenOpen(seen, t.signal);
    const started = performance.now();
    const detect = AbortSignal.any([
      t.signal,
      AbortSignal.timeout(CLOSE_DETECT_MS),
    ]);
    a.close();
    strictEqual(a.connectionState, "closed");
    // The brief allows either sign; both channels' close is logged below.
    await firstOf<unknown>(
      detect,
      (s) => whenState(b, ["disconnected", "failed", "closed"], s),
      (s) => whenClosed(b0, s),
    );
    console.log(
      `${label}: close noticed in ${
        (performance.now() - started).toFixed(0)
      } ms (state ${b.connectionState}, channel 0 ${b0.readyState}, in-band ${seen.readyState})`,
    );
  });

  test(
    "a peer that vanishes is noticed within the backend's bound",
    async (t) => {
      const peer = options.vanishingPeer!;
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--quiet",
          "--config",
          new URL("../../deno.json", import.meta.url).pathname,
          ...peer.permissions,
          new URL("./vanishing_peer.ts", import.meta.url).pathname,
          peer.module.href,
          peer.factory,
        ],
        stdin: "piped",
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      const writer = child.stdin.getWriter();
      const encoder = new TextEncoder();
      const send = (message: PeerMessage) =>
        writer.write(encoder.encode(JSON.stringify(message) + "\n"));

      let killed = false;
      const a = t.closer.add(t.backends.a.createPeerConnection(LOOPBACK));
      try {
        const a0 = a.createDataChannel("", { negotiated: true, id: 0 });
        const answered = Promise.withResolvers<void>();
        const reading = (async () => {
          let buffered = "";
          for await (
            const text of child.stdout.pipeThrough(new TextDecoderStream())
          ) {
            buffered += text;
            let newline: number;
            while ((newline = buffered.indexOf("\n")) >= 0) {
              const message = JSON.parse(
                buffered.slice(0, newline),
              ) as PeerMessage;
              buffered = buffered.slice(newline + 1);
              if ("answer" in message) {
                await a.setRemoteDescription({
                  type: "answer",
                  sdp: message.answer,
                });
                answered.resolve();
              } else if ("candidate" in message) {
                await a.addIceCandidate(message.candidate);
              }
            }
          }
        })();
        reading.catch(() => {});
        a.onicecandidate = (candidate) => {
          if (candidate !== null && isLoopback(candidate)) {
            send({ candidate }).catch(() => {});
          }
        };
        await a.setLocalDescription(await a.createOffer());
        await send({ offer: a.localDescription!.sdp });
        await waitFor<void>("the answer", t.signal, (done, fail) => {
          answered.promise.then(done);
          reading.then(() => fail(new Error("the peer process ended")), fail);
        });
        await whenConnected(a, t.signal);
        await whenOpen(a0, t.signal);
        const echoes = inbox(a0);
        a0.send(pattern(9, 9));
        deepStrictEqual(await echoes.count(1, t.signal), [pattern(9, 9)]);

        child.kill("SIGKILL");
        killed = true;
        await child.status;
        const started = performance.now();
        // Data in flight is what makes SCTP give up; an idle connection
        // relies on ICE consent freshness instead, which is slower.
        const ticker = setInterval(() => {
          try {
            if (a0.readyState === "open") a0.send(pattern(100, 1));
          } catch {
            // The channel died between the check and the send: that is the
            // very thing being waited for, and it shows on the channel too.
          }
        }, 100);
        try {
          const bound = AbortSignal.timeout(peer.boundMs);
          await firstOf<unknown>(
            bound,
            (s) => whenState(a, ["disconnected", "failed", "closed"], s),
            (s) => whenClosed(a0, s),
          );
        } finally {
          clearInterval(ticker);
        }
        console.log(
          `${label}: vanished peer noticed in ${
            (performance.now() - started).toFixed(0)
          } ms (state ${a.connectionState}, channel 0 ${a0.readyState})`,
        );
        await writer.close().catch(() => {});
        await reading;
      } finally {
        if (!killed) {
          child.kill("SIGKILL");
          await child.status;
        }
        await writer.abort().catch(() => {});
        await child.stdout.cancel().catch(() => {});
      }
    },
    {
      ignore: options.vanishingPeer === undefined,
      timeoutMs: CASE_MS + (options.vanishingPeer?.boundMs ?? 0),
    },
  );
}
