/**
 * The werift backend closing a channel the peer opened, seen from a plain
 * werift peer's SCTP association: the stream resets that go on the wire.
 *
 * werift announces such a channel before it queues its DCEP ACK. Closed from
 * that announcement, werift used to send the stream-reset request first and
 * the ACK after it, as DATA on a stream it was resetting; Chromium then
 * stalled the next channel on that id (`ackBeforeReset` in
 * `backends/werift/sctp.ts`). A werift peer takes it without a fault, so the
 * test checks the order itself: the ACK's TSN is covered by the request.
 *
 * The same view shows the backend's bundling (`bundleData`): messages sent
 * together leave in shared packets, not one packet per chunk as werift sends.
 */

import { deepStrictEqual, ok } from "node:assert/strict";
import type { Buffer } from "node:buffer";
import type { RTCDataChannel, RTCPeerConnection } from "werift";
import type { PeerConnection } from "../core/backend.ts";
import { werift } from "../backends/werift.ts";
import { LOOPBACK } from "./conformance/connect.ts";
import { CONNECT_MS, NOTHING_OPEN, within } from "./peer_connection_helpers.ts";
import {
  closePlain,
  offerFromPlain,
  plainWeriftPeer,
} from "./plain_werift_peer.ts";

/** What the test reads of a werift association. */
interface Association {
  handleData(data: Buffer): Promise<void>;
}

/** What reaches the plain peer's SCTP association. */
interface Seen {
  /** The TSN of the first DCEP ACK. */
  ackTsn?: number;
  /** Each outgoing SSN reset request: its last TSN and its streams. */
  resets: { lastTsn: number; streams: number[] }[];
  /** How many binary DATA chunks each packet that had any carried. */
  binaryChunksPerPacket?: number[];
}

const DATA = 0;
const RECONFIG = 130;
const OUTGOING_SSN_RESET_REQUEST = 13;
const PPID_DCEP = 50;
const PPID_BINARY = 53;
const DCEP_ACK = 2;

/** The chunks of an SCTP packet: type and body (after the chunk header). */
function* chunksOf(packet: Uint8Array): Generator<[number, DataView]> {
  const view = new DataView(packet.buffer, packet.byteOffset);
  for (let at = 12; at + 4 <= packet.byteLength;) {
    const length = view.getUint16(at + 2);
    if (length < 4) return;
    yield [
      packet[at],
      new DataView(packet.buffer, packet.byteOffset + at + 4, length - 4),
    ];
    at += (length + 3) & ~3;
  }
}

/** Notes the DCEP ACKs and reset requests of one SCTP packet in `seen`. */
function record(packet: Uint8Array, seen: Seen): void {
  let binary = 0;
  for (const [type, body] of chunksOf(packet)) {
    if (type === DATA && body.getUint32(8) === PPID_BINARY) binary++;
    if (
      type === DATA && body.getUint32(8) === PPID_DCEP &&
      body.getUint8(12) === DCEP_ACK
    ) {
      seen.ackTsn ??= body.getUint32(0);
    } else if (type === RECONFIG) {
      for (let at = 0; at + 4 <= body.byteLength;) {
        const length = body.getUint16(at + 2);
        if (length < 4) break;
        if (body.getUint16(at) === OUTGOING_SSN_RESET_REQUEST) {
          // Request seq, response seq, the sender's last TSN, the streams.
          const streams = [];
          for (let s = at + 16; s + 2 <= at + length; s += 2) {
            streams.push(body.getUint16(s));
          }
          seen.resets.push({ lastTsn: body.getUint32(at + 12), streams });
        }
        at += (length + 3) & ~3;
      }
    }
  }
  if (binary > 0) seen.binaryChunksPerPacket?.push(binary);
}

/** `a` comes no later than `b` in serial number arithmetic (RFC 1982). */
function tsnAtMost(a: number, b: number): boolean {
  return ((b - a) >>> 0) < 0x80000000;
}

/**
 * Connects `ours` (set up by `setUp`) with a plain werift peer that opens
 * one channel and hands it to `opened` once open, records in `seen` what
 * reaches the plain peer's SCTP, and waits (bounded) for `until`. Everything
 * is closed after, and the backend must have nothing left open.
 */
async function withPlainPeer(
  seen: Seen,
  setUp: (ours: PeerConnection) => void,
  opened: (channel: RTCDataChannel, plain: RTCPeerConnection) => void,
  until: (seen: Seen) => Promise<unknown>,
): Promise<void> {
  const backend = werift();
  const ours = backend.createPeerConnection(LOOPBACK);
  const plain = plainWeriftPeer();
  try {
    setUp(ours);
    const channel = plain.createDataChannel("init");
    channel.stateChanged.subscribe((state) => {
      if (state === "open") opened(channel, plain);
    });
    let waiting: Promise<unknown> | undefined;
    await offerFromPlain(plain, ours, () => {
      const sctp = plain.sctpTransport!.sctp as unknown as Association;
      const handle = sctp.handleData.bind(sctp);
      sctp.handleData = (packet) => {
        record(packet, seen);
        return handle(packet);
      };
      waiting = until(seen);
    });
    await within(waiting!, CONNECT_MS, "the peer's channels");
  } finally {
    ours.close();
    await closePlain(plain);
    await backend.idle(AbortSignal.timeout(CONNECT_MS));
  }
  deepStrictEqual(backend.openHandles(), NOTHING_OPEN);
}

Deno.test(
  "werift: a channel closed as the peer opens it is reset only after its DCEP ACK",
  async () => {
    const seen: Seen = { resets: [] };
    const reset = Promise.withResolvers<void>();
    await withPlainPeer(
      seen,
      // As the `/webrtc` answerer does with `init`.
      (ours) => ours.ondatachannel = (channel) => channel.close(),
      (channel) => {
        channel.stateChanged.subscribe((state) => {
          if (state === "closed") reset.resolve();
        });
      },
      () => reset.promise,
    );
    ok(seen.ackTsn !== undefined, "no DCEP ACK");
    ok(seen.resets.length > 0, "no reset request");
    const { lastTsn } = seen.resets[0];
    ok(
      tsnAtMost(seen.ackTsn, lastTsn),
      `the DCEP ACK (TSN ${seen.ackTsn}) is past the reset request's last TSN ${lastTsn}`,
    );
  },
);

Deno.test(
  "werift: messages sent together share packets, up to werift's MTU",
  async () => {
    const seen: Seen = { resets: [], binaryChunksPerPacket: [] };
    const all = Promise.withResolvers<void>();
    const sizes = [2, 300, 2, 300, 2, 300, 5000, 2];
    let received = 0;
    await withPlainPeer(
      seen,
      (ours) =>
        ours.ondatachannel = (channel) => {
          channel.onopen = () => {
            // As a stream sends small frames and a large one's prefix.
            for (const size of sizes) channel.send(new Uint8Array(size));
          };
        },
      (channel) => {
        channel.onMessage.subscribe((data) => {
          ok(typeof data !== "string");
          if (++received === sizes.length) all.resolve();
        });
      },
      () => all.promise,
    );
    const counts = seen.binaryChunksPerPacket!;
    // 5000 bytes take five chunks of their own at werift's 1191-byte MTU.
    const chunks = counts.reduce((sum, n) => sum + n, 0);
    ok(chunks >= sizes.length + 4, `only ${chunks} binary DATA chunks`);
    ok(
      counts.some((n) => n > 1),
      `every packet carried one chunk: ${counts.join(" ")}`,
    );
    ok(counts.length < chunks, "no packet was saved");
  },
);
