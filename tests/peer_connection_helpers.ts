/**
 * Steps and bounded waits for tests that drive two peer connections of the
 * backend seam directly, in this process on loopback: `werift_test.ts` (werift
 * on both sides) and `mixed_backends_cases.ts` (libdatachannel against
 * werift). The conformance suite has its own, signal-based helpers in
 * `conformance/connect.ts`.
 */

import { deepStrictEqual } from "node:assert/strict";
import { createHash } from "node:crypto";
import type {
  DataChannel,
  PeerConnection,
  PeerConnectionBackend,
  PeerConnectionState,
} from "../core/backend.ts";

/** Generous for loopback, where a connection is up in about 200 ms. */
export const CONNECT_MS = 10_000;

/** What `openHandles()` reports once a backend has nothing open. */
export const NOTHING_OPEN = { peerConnections: 0, dataChannels: 0 };

/** Makes the two backends of a case: one backend twice, or a mixed pair. */
export type BackendPairMaker = () => Promise<{
  a: PeerConnectionBackend;
  b: PeerConnectionBackend;
}>;

/**
 * A registrar of `title: name` tests that each get a fresh pair of backends
 * from `make`, settled after the case and then checked to have no peer
 * connection or data channel left open.
 */
export function backendPairTests(
  title: string,
  make: BackendPairMaker,
  settle: (backends: PeerConnectionBackend[]) => Promise<void>,
): (
  name: string,
  fn: (a: PeerConnectionBackend, b: PeerConnectionBackend) => Promise<void>,
) => void {
  return (name, fn) =>
    Deno.test(`${title}: ${name}`, async () => {
      const { a, b } = await make();
      try {
        await fn(a, b);
      } finally {
        await settle([a, b]);
      }
      for (const backend of new Set([a, b])) {
        const { peerConnections, dataChannels } = backend.openHandles();
        deepStrictEqual(
          { peerConnections, dataChannels },
          NOTHING_OPEN,
          "native handles left open",
        );
      }
    });
}

/** Resolves with `promise`, or rejects once `ms` have passed. */
export async function within<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Trickles candidates both ways and runs offer/answer; `a` offers. */
export async function negotiate(
  a: PeerConnection,
  b: PeerConnection,
): Promise<void> {
  a.onicecandidate = (c) => void (c && b.addIceCandidate(c));
  b.onicecandidate = (c) => void (c && a.addIceCandidate(c));
  await a.setLocalDescription(await a.createOffer());
  await b.setRemoteDescription(a.localDescription!);
  await b.setLocalDescription(await b.createAnswer());
  await a.setRemoteDescription(b.localDescription!);
}

/** Resolves when `channel` is open (at once if it is), within {@linkcode CONNECT_MS}. */
export function opened(channel: DataChannel): Promise<void> {
  if (channel.readyState === "open") return Promise.resolve();
  return within(
    new Promise<void>((resolve) => (channel.onopen = resolve)),
    CONNECT_MS,
    "channel open",
  );
}

/** Resolves when `channel` is closed (at once if it is), within {@linkcode CONNECT_MS}. */
export function closed(channel: DataChannel): Promise<void> {
  if (channel.readyState === "closed") return Promise.resolve();
  return within(
    new Promise<void>((resolve) => (channel.onclose = resolve)),
    CONNECT_MS,
    "channel close",
  );
}

/**
 * Resolves with the states `pc` reports from now on, once it reports
 * `state`; rejects after `ms`.
 */
export function reaches(
  pc: PeerConnection,
  state: PeerConnectionState,
  ms = CONNECT_MS,
): Promise<PeerConnectionState[]> {
  const seen: PeerConnectionState[] = [];
  return within(
    new Promise((resolve) => {
      pc.onconnectionstatechange = (s) => {
        seen.push(s);
        if (s === state) resolve(seen);
      };
    }),
    ms,
    `connection ${state}`,
  );
}

/**
 * Creates the negotiated channel 0 on both and connects them (`a` offers);
 * resolves when both channels are open.
 */
export async function connectChannels(a: PeerConnection, b: PeerConnection) {
  const a0 = a.createDataChannel("", { negotiated: true, id: 0 });
  const b0 = b.createDataChannel("", { negotiated: true, id: 0 });
  await within(negotiate(a, b), CONNECT_MS, "negotiation");
  await Promise.all([opened(a0), opened(b0)]);
  return { a0, b0 };
}

/** `from` opens an in-band channel; resolves when both ends are open. */
export async function inboundChannel(
  from: PeerConnection,
  to: PeerConnection,
  label = "",
): Promise<{ out: DataChannel; inn: DataChannel }> {
  const accepted = within(
    new Promise<DataChannel>((resolve) => (to.ondatachannel = resolve)),
    CONNECT_MS,
    "ondatachannel",
  );
  const out = from.createDataChannel(label);
  const inn = await accepted;
  await Promise.all([opened(out), opened(inn)]);
  return { out, inn };
}

/** Collects messages (copied, as the seam asks) until `count` arrived. */
export function collect(
  channel: DataChannel,
  count: number,
): Promise<Uint8Array[]> {
  const got: Uint8Array[] = [];
  return within(
    new Promise((resolve) => {
      channel.onmessage = (data) => {
        got.push(data.slice());
        if (got.length === count) resolve(got);
      };
    }),
    CONNECT_MS,
    `${count} messages`,
  );
}

/** Sends `message` on `from` and asserts it is all `to` receives. */
export async function assertDelivered(
  from: DataChannel,
  to: DataChannel,
  message: Uint8Array,
): Promise<void> {
  const got = collect(to, 1);
  from.send(message);
  deepStrictEqual(await got, [message]);
}

/** The SHA-256 of `bytes`. */
export function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(bytes).digest());
}
