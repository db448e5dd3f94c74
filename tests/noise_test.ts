import {
  deepEqual,
  equal,
  notEqual,
  ok,
  rejects,
  strictEqual,
} from "node:assert/strict";
import {
  NoiseHandshakeError,
  P2prtcError,
  PeerIdMismatchError,
  StreamErrorCode,
  StreamResetError,
  TimeoutError,
} from "../core/errors.ts";
import {
  encodeFrame,
  Flag,
  type Frame,
  FrameDecoder,
  prefixLength,
} from "../core/framing.ts";
import { generateIdentity } from "../core/identity.ts";
import {
  NOISE_HANDSHAKE_TIMEOUT,
  noiseHandshake,
  type NoiseHandshakeOptions,
  type NoiseHandshakeResult,
  noiseRoleOf,
} from "../core/noise.ts";
import { noisePrologue } from "../core/noise_prologue.ts";
import { WebRTCStream } from "../core/stream.ts";
import { FakeDataChannel, type FakeLinkOptions } from "./fake_channel.ts";
import { isSettled, tick } from "./stream_helpers.ts";

const hex = (text: string) =>
  Uint8Array.from(text.match(/../g)!, (byte) => parseInt(byte, 16));

// The fingerprints of the spec's test vector (webrtc-direct.md).
const DIALER_FP = hex(
  "3e79af40d6059617a0d83b83a52ce73b0c1f37a72c6043ad2969e2351bdca870",
);
const LISTENER_FP = hex(
  "30fc9f469c207419dfdd0aab5f27a86c973c94e40548db9375cca2e915973b99",
);
const PROLOGUE = noisePrologue({
  dialer: { algorithm: "sha-256", digest: DIALER_FP },
  listener: { algorithm: "sha-256", digest: LISTENER_FP },
});

const dialerId = await generateIdentity();
const listenerId = await generateIdentity();
const strangerId = await generateIdentity();

/** Bounds every wait, so a hang fails the test instead of stalling it. */
const BOUND = 5_000;

/** Both ends of channel 0 (id 0 on both sides, as WebRTC-Direct has it). */
interface Channel0 {
  dialerEnd: FakeDataChannel;
  listenerEnd: FakeDataChannel;
}

function channel0Pair(options: FakeLinkOptions = {}): Channel0 {
  const dialerEnd = new FakeDataChannel(0, options);
  const listenerEnd = new FakeDataChannel(0, options);
  dialerEnd.peer = listenerEnd;
  listenerEnd.peer = dialerEnd;
  return { dialerEnd, listenerEnd };
}

function dialerOptions(
  extra: Partial<NoiseHandshakeOptions> = {},
): NoiseHandshakeOptions {
  return {
    role: noiseRoleOf("dialer"),
    privateKey: dialerId.privateKey,
    prologue: PROLOGUE,
    expectedPeer: listenerId.peerId,
    timeout: BOUND,
    ...extra,
  };
}

function listenerOptions(
  extra: Partial<NoiseHandshakeOptions> = {},
): NoiseHandshakeOptions {
  return {
    role: noiseRoleOf("listener"),
    privateKey: listenerId.privateKey,
    prologue: PROLOGUE,
    timeout: BOUND,
    ...extra,
  };
}

/** Settles with `promise`, or fails once {@linkcode BOUND} ms have passed. */
async function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${what} did not settle within ${BOUND} ms`)),
          BOUND,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The frames an end has sent, decoded from its messages. */
function framesSent(end: FakeDataChannel): Frame[] {
  const frames: Frame[] = [];
  const decoder = new FrameDecoder();
  for (const message of end.sent) {
    decoder.push(message, (frame) =>
      frames.push({
        ...frame,
        message: frame.message?.slice(),
      }));
  }
  return frames;
}

/** Sends one well-formed frame carrying `data`, prefix and body apart. */
function sendRawFrame(end: FakeDataChannel, data: Uint8Array): void {
  const frame = encodeFrame({ message: data });
  const prefix = prefixLength(frame);
  end.send(frame.subarray(0, prefix));
  end.send(frame.subarray(prefix));
}

/** A Noise message as it travels: a 2-byte big-endian length, then bytes. */
function noiseMessage(bytes: Uint8Array): Uint8Array {
  return new Uint8Array([bytes.length >> 8, bytes.length & 0xff, ...bytes]);
}

/** Ends the test's channels and waits until the streams are done. */
async function teardown(
  channel: Channel0,
  ...streams: WebRTCStream[]
): Promise<void> {
  channel.dialerEnd.abruptClose();
  await within(Promise.all(streams.map((s) => s.closed)), "teardown");
}

async function handshakeBoth(
  dialer: WebRTCStream,
  listener: WebRTCStream,
): Promise<[NoiseHandshakeResult, NoiseHandshakeResult]> {
  return await within(
    Promise.all([
      noiseHandshake(dialer, dialerOptions()),
      noiseHandshake(listener, listenerOptions()),
    ]),
    "handshake",
  );
}

function assertOpenAndIdle(channel: Channel0, ...streams: WebRTCStream[]) {
  for (const end of [channel.dialerEnd, channel.listenerEnd]) {
    equal(end.readyState, "open");
    equal(end.closeCalls, 0);
  }
  for (const stream of streams) {
    equal(stream.readable.locked, false);
    equal(stream.writable.locked, false);
  }
}

Deno.test("noiseRoleOf: the listener initiates, the dialer responds", () => {
  equal(noiseRoleOf("listener"), "initiator");
  equal(noiseRoleOf("dialer"), "responder");
  equal(NOISE_HANDSHAKE_TIMEOUT, 10_000);
});

Deno.test("handshake: both sides learn the other's peer ID; channel 0 stays open and idle", async () => {
  const channel = channel0Pair();
  const dialer = new WebRTCStream(channel.dialerEnd);
  const listener = new WebRTCStream(channel.listenerEnd);

  const [atDialer, atListener] = await handshakeBoth(dialer, listener);
  equal(atDialer.remotePeer.toString(), listenerId.peerId.toString());
  equal(atListener.remotePeer.toString(), dialerId.peerId.toString());

  // Three Noise messages, one data frame each, no flag: no FIN, no RESET.
  const fromListener = framesSent(channel.listenerEnd);
  const fromDialer = framesSent(channel.dialerEnd);
  equal(fromListener.length, 2);
  equal(fromDialer.length, 1);
  for (const frame of [...fromListener, ...fromDialer]) {
    equal(frame.flag, undefined);
    ok(frame.message !== undefined && frame.message.length > 0);
    // Each frame holds exactly one whole Noise message.
    const length = (frame.message[0] << 8) | frame.message[1];
    equal(frame.message.length, 2 + length);
  }

  // Still open some turns later: nothing closes or FINs channel 0.
  await tick();
  await tick();
  assertOpenAndIdle(channel, dialer, listener);
  equal(await isSettled(dialer.closed), false);
  equal(await isSettled(listener.closed), false);
  equal(channel.dialerEnd.sentFrames.length, 1);
  equal(channel.listenerEnd.sentFrames.length, 2);

  // The handshake no longer reads channel 0: later bytes wait for whoever
  // reads it next.
  const writer = dialer.writable.getWriter();
  await writer.write(new TextEncoder().encode("late"));
  writer.releaseLock();
  const reader = listener.readable.getReader();
  const { value } = await within(reader.read(), "read after handshake");
  reader.releaseLock();
  equal(new TextDecoder().decode(value), "late");

  await teardown(channel, dialer, listener);
});

Deno.test("handshake: the listener's first data frame is 24 12 22 00 20 <e>", async () => {
  const channel = channel0Pair();
  const dialer = new WebRTCStream(channel.dialerEnd);
  const listener = new WebRTCStream(channel.listenerEnd);
  await handshakeBoth(dialer, listener);

  // A frame this small goes out as one channel message.
  const [frame] = channel.listenerEnd.sent;
  equal(frame.length, 37);
  deepEqual([...frame.subarray(0, 5)], [0x24, 0x12, 0x22, 0x00, 0x20]);
  const body = frame.subarray(1);
  // The 32-byte ephemeral key is not all zeros.
  ok(body.subarray(4).some((byte) => byte !== 0));

  // The identity payload of an Ed25519 peer: identity_key (2 + 36 bytes),
  // identity_sig (2 + 64) and an empty extensions field (22 00), so no
  // stream muxers and no certhashes: 106 bytes.
  const payload = 38 + 66 + 2;
  // Message 2 (dialer): e, then s and the payload encrypted (16-byte tags).
  const [answer] = framesSent(channel.dialerEnd);
  equal(answer.message!.length, 2 + 32 + (32 + 16) + (payload + 16));
  // Message 3 (listener): s and the payload, encrypted.
  const [, last] = framesSent(channel.listenerEnd);
  equal(last.message!.length, 2 + (32 + 16) + (payload + 16));

  await teardown(channel, dialer, listener);
});

Deno.test("handshake: messages split into 1-byte pieces still work", async () => {
  const channel = channel0Pair({ splitInto: 1 });
  const dialer = new WebRTCStream(channel.dialerEnd);
  const listener = new WebRTCStream(channel.listenerEnd);
  const [atDialer, atListener] = await handshakeBoth(dialer, listener);
  ok(atDialer.remotePeer.equals(listenerId.peerId));
  ok(atListener.remotePeer.equals(dialerId.peerId));
  assertOpenAndIdle(channel, dialer, listener);
  await teardown(channel, dialer, listener);
});

Deno.test("handshake: messages joined into one still work", async () => {
  const channel = channel0Pair({ join: true });
  const dialer = new WebRTCStream(channel.dialerEnd);
  const listener = new WebRTCStream(channel.listenerEnd);
  const [atDialer, atListener] = await handshakeBoth(dialer, listener);
  ok(atDialer.remotePeer.equals(listenerId.peerId));
  ok(atListener.remotePeer.equals(dialerId.peerId));
  await teardown(channel, dialer, listener);
});

Deno.test("handshake: a Noise message split across frames still works", async () => {
  // A peer whose messages arrive in two frames each: the second half of one
  // frame and the start of the next form one Noise message.
  const channel = channel0Pair();
  const dialer = new WebRTCStream(channel.dialerEnd);
  const listener = new WebRTCStream(channel.listenerEnd);
  // Drop the listener's first frame.
  let sends = 0;
  channel.listenerEnd.intercept = () => ++sends === 1 ? "drop" : "deliver";
  const listening = noiseHandshake(listener, listenerOptions());
  const dialing = noiseHandshake(dialer, dialerOptions());
  await tick();
  // Re-send that first message as two frames.
  const [first] = framesSent(channel.listenerEnd);
  sendRawFrame(channel.listenerEnd, first.message!.subarray(0, 10));
  sendRawFrame(channel.listenerEnd, first.message!.subarray(10));
  const [atDialer, atListener] = await within(
    Promise.all([dialing, listening]),
    "handshake",
  );
  ok(atDialer.remotePeer.equals(listenerId.peerId));
  ok(atListener.remotePeer.equals(dialerId.peerId));
  await teardown(channel, dialer, listener);
});

Deno.test("handshake: bytes after the last message neither fail the handshake nor reset channel 0", async () => {
  const channel = channel0Pair();
  const dialer = new WebRTCStream(channel.dialerEnd);
  const listener = new WebRTCStream(channel.listenerEnd);
  // Drop the listener's second frame (message 3) ...
  let sends = 0;
  channel.listenerEnd.intercept = () => ++sends === 2 ? "drop" : "deliver";
  const dialing = noiseHandshake(dialer, dialerOptions());
  const atListener = await within(
    noiseHandshake(listener, listenerOptions()),
    "listener",
  );
  ok(atListener.remotePeer.equals(dialerId.peerId));
  // ... and deliver it with junk behind it in the same frame.
  const [, third] = framesSent(channel.listenerEnd);
  sendRawFrame(
    channel.listenerEnd,
    new Uint8Array([...third.message!, 0x00, 0x05, 1, 2, 3, 4, 5]),
  );
  const atDialer = await within(dialing, "dialer");
  ok(atDialer.remotePeer.equals(listenerId.peerId));
  await tick();
  await tick();
  assertOpenAndIdle(channel, dialer, listener);
  equal(await isSettled(dialer.closed), false);
  equal(framesSent(channel.dialerEnd).length, 1);
  await teardown(channel, dialer, listener);
});

Deno.test("handshake: the dialer rejects a listener that is not the expected peer", async () => {
  const channel = channel0Pair();
  const dialer = new WebRTCStream(channel.dialerEnd);
  const listener = new WebRTCStream(channel.listenerEnd);
  const started = Date.now();
  const dialing = noiseHandshake(
    dialer,
    dialerOptions({ expectedPeer: strangerId.peerId }),
  );
  const listening = noiseHandshake(listener, listenerOptions());

  await within(
    rejects(dialing, (error) => {
      ok(error instanceof PeerIdMismatchError);
      ok(error instanceof P2prtcError);
      equal(error.code, "ERR_PEER_ID_MISMATCH");
      equal(error.expected, strangerId.peerId.toString());
      equal(error.actual, listenerId.peerId.toString());
      return true;
    }),
    "dialer",
  );
  ok(Date.now() - started < 1_000, "the mismatch is found at once");

  // XX gives the initiator no answer to its last message, so the listener's
  // handshake completed; it learns of the rejection from the reset of
  // channel 0 (on a real connection, also from the connection closing).
  const atListener = await within(listening, "listener");
  ok(atListener.remotePeer.equals(dialerId.peerId));
  await within(listener.closed, "listener's channel 0 closing");
  await rejects(
    listener.readable.getReader().read(),
    (error) => error instanceof StreamResetError && error.remote,
  );
  equal(framesSent(channel.dialerEnd).at(-1)?.flag, Flag.RESET);
  await within(dialer.closed, "dialer's channel 0 closing");
});

Deno.test("handshake: a listener expecting another dialer fails typed", async () => {
  const channel = channel0Pair();
  const dialer = new WebRTCStream(channel.dialerEnd);
  const listener = new WebRTCStream(channel.listenerEnd);
  const dialing = noiseHandshake(dialer, dialerOptions());
  const listening = noiseHandshake(
    listener,
    listenerOptions({ expectedPeer: strangerId.peerId }),
  );
  await within(
    rejects(listening, (error) => {
      ok(error instanceof PeerIdMismatchError);
      equal(error.actual, dialerId.peerId.toString());
      return true;
    }),
    "listener",
  );
  // The dialer either finished or saw the reset; either way it is bounded
  // and channel 0 ends on both sides.
  await within(dialing.catch(() => {}), "dialer");
  await within(
    Promise.all([dialer.closed, listener.closed]),
    "channel 0 closing",
  );
});

Deno.test("handshake: different prologues (a DTLS MITM) fail on both sides", async () => {
  const channel = channel0Pair();
  const dialer = new WebRTCStream(channel.dialerEnd);
  const listener = new WebRTCStream(channel.listenerEnd);
  // The listener saw another dialer certificate than the dialer has.
  const mitmPrologue = noisePrologue({
    dialer: { algorithm: "sha-256", digest: new Uint8Array(32).fill(7) },
    listener: { algorithm: "sha-256", digest: LISTENER_FP },
  });
  const started = Date.now();
  const results = await within(
    Promise.allSettled([
      noiseHandshake(dialer, dialerOptions()),
      noiseHandshake(listener, listenerOptions({ prologue: mitmPrologue })),
    ]),
    "handshake",
  );
  ok(Date.now() - started < 1_000, "both fail at once, not by time limit");
  const [atDialer, atListener] = results.map((result) => {
    equal(result.status, "rejected");
    return (result as PromiseRejectedResult).reason;
  });
  // The listener cannot decrypt the dialer's answer.
  ok(atListener instanceof NoiseHandshakeError);
  equal(atListener.code, "ERR_NOISE_HANDSHAKE_FAILED");
  ok(atListener.cause instanceof Error);
  ok(!(atListener.cause instanceof StreamResetError));
  // The dialer learns it from the listener's reset of channel 0.
  ok(atDialer instanceof NoiseHandshakeError);
  ok(atDialer.cause instanceof StreamResetError);
  ok(atDialer.cause.remote);
  await within(
    Promise.all([dialer.closed, listener.closed]),
    "channel 0 closing",
  );
});

Deno.test("handshake: garbage from a raw peer is a typed error, and nothing else breaks", async (t) => {
  await t.step("a Noise message too short to hold a key", async () => {
    const channel = channel0Pair();
    const dialer = new WebRTCStream(channel.dialerEnd);
    const dialing = noiseHandshake(dialer, dialerOptions());
    sendRawFrame(channel.listenerEnd, noiseMessage(new Uint8Array([1, 2, 3])));
    await within(
      rejects(dialing, (error) => {
        ok(error instanceof NoiseHandshakeError);
        ok(error.cause instanceof Error);
        return true;
      }),
      "dialer",
    );
    // The raw peer is told with a RESET, and channel 0 ends.
    equal(framesSent(channel.dialerEnd).at(-1)?.flag, Flag.RESET);
    await within(dialer.closed, "channel 0 closing");
  });

  await t.step("random bytes instead of the dialer's answer", async () => {
    const channel = channel0Pair();
    const listener = new WebRTCStream(channel.listenerEnd);
    const listening = noiseHandshake(listener, listenerOptions());
    const junk = crypto.getRandomValues(new Uint8Array(200));
    sendRawFrame(channel.dialerEnd, noiseMessage(junk));
    await within(
      rejects(listening, (error) => error instanceof NoiseHandshakeError),
      "listener",
    );
    await within(listener.closed, "channel 0 closing");
  });

  await t.step("bytes that are not even frames", async () => {
    const channel = channel0Pair();
    const dialer = new WebRTCStream(channel.dialerEnd);
    const dialing = noiseHandshake(dialer, dialerOptions());
    // Field 1 as length-delimited: not a valid frame body.
    channel.listenerEnd.send(new Uint8Array([3]));
    channel.listenerEnd.send(new Uint8Array([0x0a, 0x01, 0x00]));
    await within(
      rejects(dialing, (error) => {
        ok(error instanceof NoiseHandshakeError);
        ok(error.cause instanceof StreamResetError);
        equal(error.cause.errorCode, StreamErrorCode.PROTOCOL_VIOLATION);
        return true;
      }),
      "dialer",
    );
    await within(dialer.closed, "channel 0 closing");
  });

  await t.step("the peer ends channel 0 mid-handshake (FIN)", async () => {
    const channel = channel0Pair();
    const dialer = new WebRTCStream(channel.dialerEnd);
    const dialing = noiseHandshake(dialer, dialerOptions());
    const finBody = new Uint8Array([0x08, Flag.FIN]);
    channel.listenerEnd.send(new Uint8Array([finBody.length]));
    channel.listenerEnd.send(finBody);
    await within(
      rejects(dialing, (error) => error instanceof NoiseHandshakeError),
      "dialer",
    );
    await within(dialer.closed, "channel 0 closing");
  });

  await t.step("a good handshake afterwards still succeeds", async () => {
    const channel = channel0Pair();
    const dialer = new WebRTCStream(channel.dialerEnd);
    const listener = new WebRTCStream(channel.listenerEnd);
    const [atDialer] = await handshakeBoth(dialer, listener);
    ok(atDialer.remotePeer.equals(listenerId.peerId));
    await teardown(channel, dialer, listener);
  });
});

Deno.test("handshake: a silent peer times out with TimeoutError", async () => {
  const channel = channel0Pair();
  const dialer = new WebRTCStream(channel.dialerEnd);
  const started = Date.now();
  await within(
    rejects(
      noiseHandshake(dialer, dialerOptions({ timeout: 100 })),
      (error) => {
        ok(error instanceof TimeoutError);
        equal(error.code, "ERR_TIMEOUT");
        return true;
      },
    ),
    "dialer",
  );
  const elapsed = Date.now() - started;
  ok(elapsed >= 90 && elapsed < 2_000, `timed out after ${elapsed} ms`);
  equal(framesSent(channel.dialerEnd).at(-1)?.flag, Flag.RESET);
  await within(dialer.closed, "channel 0 closing");
});

Deno.test("handshake: two responders (roles mixed up) fail, bounded", async () => {
  const channel = channel0Pair();
  const a = new WebRTCStream(channel.dialerEnd);
  const b = new WebRTCStream(channel.listenerEnd);
  const [atA, atB] = await within(
    Promise.allSettled([
      noiseHandshake(a, dialerOptions({ timeout: 100 })),
      noiseHandshake(b, listenerOptions({ role: "responder", timeout: 1_000 })),
    ]),
    "handshake",
  );
  // Both wait for a first message; the first to give up resets channel 0,
  // which ends the other's wait too.
  equal(atA.status, "rejected");
  ok((atA as PromiseRejectedResult).reason instanceof TimeoutError);
  equal(atB.status, "rejected");
  const errorB = (atB as PromiseRejectedResult).reason;
  ok(errorB instanceof NoiseHandshakeError);
  ok(errorB.cause instanceof StreamResetError && errorB.cause.remote);
  await within(Promise.all([a.closed, b.closed]), "channel 0 closing");
});

Deno.test("handshake: aborting rejects with the signal's reason", async () => {
  const channel = channel0Pair();
  const dialer = new WebRTCStream(channel.dialerEnd);
  const controller = new AbortController();
  const dialing = noiseHandshake(
    dialer,
    dialerOptions({ signal: controller.signal }),
  );
  await tick();
  const reason = new Error("changed my mind");
  controller.abort(reason);
  await within(
    rejects(dialing, (error) => {
      strictEqual(error, reason);
      return true;
    }),
    "dialer",
  );
  equal(framesSent(channel.dialerEnd).at(-1)?.flag, Flag.RESET);
  await within(dialer.closed, "channel 0 closing");
});

Deno.test("handshake: an already aborted signal leaves channel 0 untouched", async () => {
  const channel = channel0Pair();
  const dialer = new WebRTCStream(channel.dialerEnd);
  const reason = new Error("never mind");
  await rejects(
    noiseHandshake(
      dialer,
      dialerOptions({ signal: AbortSignal.abort(reason) }),
    ),
    (error) => error === reason,
  );
  equal(channel.dialerEnd.sent.length, 0);
  assertOpenAndIdle(channel, dialer);
  await teardown(channel, dialer);
});

Deno.test("handshake: the abort reason wins over a timeout", async () => {
  const channel = channel0Pair();
  const dialer = new WebRTCStream(channel.dialerEnd);
  const controller = new AbortController();
  const reason = new Error("stop");
  const dialing = noiseHandshake(
    dialer,
    dialerOptions({ signal: controller.signal, timeout: 50 }),
  );
  controller.abort(reason);
  await within(rejects(dialing, (error) => error === reason), "dialer");
  await within(dialer.closed, "channel 0 closing");
});

Deno.test("handshake: a fresh ephemeral and static key per handshake", async () => {
  const firstBodies: Uint8Array[] = [];
  for (let i = 0; i < 2; i++) {
    const channel = channel0Pair();
    const dialer = new WebRTCStream(channel.dialerEnd);
    const listener = new WebRTCStream(channel.listenerEnd);
    await handshakeBoth(dialer, listener);
    firstBodies.push(channel.listenerEnd.sentFrames[0]);
    await teardown(channel, dialer, listener);
  }
  notEqual(
    Array.from(firstBodies[0]).join(),
    Array.from(firstBodies[1]).join(),
  );
});
