/**
 * The werift backend closing a channel the peer opened, seen from a plain
 * werift peer's SCTP association: the stream resets that go on the wire.
 *
 * werift announces such a channel before it queues its DCEP ACK. Closed from
 * that announcement, werift used to send the stream-reset request first and
 * the ACK after it, as DATA on a stream it was resetting; Chromium then
 * stalled the next channel on that id (`ackBeforeReset` in
 * `backends/werift/stream_resets.ts`). A werift peer takes it without a
 * fault, so the test checks the order itself: the ACK's TSN is covered by the
 * request.
 *
 * And a peer that opens its next channel on an id while werift still waits
 * for the answer to its reset of that stream, as libdatachannel did under
 * js-libp2p (`holdReopenedStreams`): the new channel opens and stays open.
 *
 * The same view shows the backend's bundling (`bundleData`): messages sent
 * together leave in shared packets, not one packet per chunk as werift sends.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { Buffer } from "node:buffer";
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

/** What the test reads of a werift association, and where it steps in. */
interface Association {
  handleData(data: Buffer): Promise<void>;
  /** Handles one parameter of a received RE-CONFIG chunk. */
  receiveReconfigParam(param: { type: number }): Promise<void>;
  /** Sends one RE-CONFIG parameter: werift reads only these two fields. */
  sendReconfigParam(param: { type: number; bytes: Buffer }): Promise<void>;
  /** Streams reset in both directions. */
  onReconfigStreams: {
    subscribe(listener: (streamIds: number[]) => void): unknown;
  };
}

/** What reaches the plain peer's SCTP association. */
interface Seen {
  /** The TSN of the first DCEP ACK. */
  ackTsn?: number;
  /** Each outgoing SSN reset request: its sequence number, last TSN and streams. */
  resets: { sequence: number; lastTsn: number; streams: number[] }[];
  /** How many binary DATA chunks each packet that had any carried. */
  binaryChunksPerPacket?: number[];
}

const DATA = 0;
const RECONFIG = 130;
const OUTGOING_SSN_RESET_REQUEST = 13;
const RECONFIG_RESPONSE = 16;
const PERFORMED = 1;
const IN_PROGRESS = 6;
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
          seen.resets.push({
            sequence: body.getUint32(at + 4),
            lastTsn: body.getUint32(at + 12),
            streams,
          });
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
  patch?: (sctp: Association) => void,
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
      patch?.(sctp);
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

/** A Re-configuration Response parameter's value: the request it answers, the result. */
function response(sequence: number, result: number): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeUInt32BE(sequence, 0);
  bytes.writeUInt32BE(result, 4);
  return bytes;
}

/**
 * Makes the plain peer answer the first reset request it gets "in progress"
 * and send no later answer, as libdatachannel did, and answer the request's
 * retransmission "performed" without handling it twice (werift would queue
 * a reset of its own again, of whatever channel holds the id by then).
 */
function answerFirstResetLate(sctp: Association): void {
  const answered = new Set<number>();
  let first = true;
  const sendParam = sctp.sendReconfigParam.bind(sctp);
  sctp.sendReconfigParam = (param) => {
    if (param.type !== RECONFIG_RESPONSE || !first) return sendParam(param);
    first = false;
    const sequence = param.bytes.readUInt32BE(0);
    return sendParam({
      type: RECONFIG_RESPONSE,
      bytes: response(sequence, IN_PROGRESS),
    });
  };
  const receiveParam = sctp.receiveReconfigParam.bind(sctp);
  sctp.receiveReconfigParam = (param) => {
    if (param.type !== OUTGOING_SSN_RESET_REQUEST) return receiveParam(param);
    const sequence = (param as unknown as { requestSequence: number })
      .requestSequence;
    if (!answered.has(sequence)) {
      answered.add(sequence);
      return receiveParam(param);
    }
    return sendParam({
      type: RECONFIG_RESPONSE,
      bytes: response(sequence, PERFORMED),
    });
  };
}

Deno.test(
  "werift: the peer opens a channel on an id whose reset werift still waits on",
  async () => {
    const seen: Seen = { resets: [] };
    const echoed = Promise.withResolvers<string>();
    let plainPeer: RTCPeerConnection | undefined;
    let firstId: number | undefined;
    let secondId: number | undefined;
    /** The plain peer opens its next channel, on the lowest free id. */
    const openAgain = () => {
      const again = plainPeer!.createDataChannel("again");
      again.stateChanged.subscribe((state) => {
        if (state === "open") {
          secondId = again.id;
          again.send(Buffer.from("over the id again"));
        } else if (state === "closed") {
          echoed.reject(new Error("the new channel was closed"));
        }
      });
      again.onMessage.subscribe((data) => echoed.resolve(String(data)));
    };
    await withPlainPeer(
      seen,
      (ours) => {
        let accepted = 0;
        ours.ondatachannel = (channel) => {
          if (++accepted === 1) {
            channel.onopen = () => channel.close();
            return;
          }
          channel.onmessage = (data) => channel.send(data);
        };
      },
      (channel, plain) => {
        plainPeer = plain;
        firstId = channel.id;
      },
      () => echoed.promise,
      (sctp) => {
        answerFirstResetLate(sctp);
        // The first announcement is werift's request, the second the plain
        // peer's own: both directions are reset there, werift has only
        // heard "in progress", and the id is free for the next channel.
        let resets = 0;
        sctp.onReconfigStreams.subscribe((ids) => {
          if (ids.includes(firstId!) && ++resets === 2) setTimeout(openAgain);
        });
      },
    );
    strictEqual(await echoed.promise, "over the id again");
    strictEqual(secondId, firstId, "the peer did not reuse the id");
    const requests = new Set(
      seen.resets.filter((r) => r.streams.includes(firstId!)).map((r) =>
        r.sequence
      ),
    );
    strictEqual(requests.size, 1, "werift reset the id again");
  },
);
