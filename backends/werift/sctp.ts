/**
 * Fixes to werift's SCTP association: its receive path, its timers and its
 * packets, installed on each association before its first packet arrives.
 * Stream resets have their own module, `stream_resets.ts`.
 *
 * Internal to the werift backend.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import {
  completesRequest,
  DCEP_ACK,
  type InboundStream,
  PPID_DCEP,
  PPIDS_WERIFT_KNOWS,
  type SctpAssociation,
} from "./internals.ts";

/**
 * Keeps from werift the messages its receive path throws on. It throws from
 * an async function nobody awaits, so each is an unhandled rejection that
 * ends the process: a payload protocol id it does not know (the deprecated
 * partial ones, say), an empty DCEP message, and a DCEP ACK for a channel it
 * has already forgotten. That last one happens in normal use: werift sends
 * its stream-reset requests and responses ahead of queued DATA, so a channel
 * closed right after it was opened is gone here before the peer's ACK for
 * its OPEN arrives. None of them carries anything a channel could use.
 */
export function guardReceive(
  sctp: SctpAssociation,
  channels: Record<number, unknown>,
): void {
  const receive = sctp.onReceive;
  const execute = receive.execute;
  receive.execute = (streamId, ppid, data) => {
    if (!PPIDS_WERIFT_KNOWS.has(ppid)) return;
    if (ppid === PPID_DCEP) {
      if (data.byteLength === 0) return;
      if (data[0] === DCEP_ACK && channels[streamId] === undefined) return;
    }
    execute(streamId, ppid, data);
  };
}

/**
 * Makes werift deliver every message a stream has ready, not just the first.
 *
 * werift's reassembly delivers the next message of a stream only if its TSN
 * directly follows the one it has just delivered. When a lost chunk is
 * retransmitted after later ones of the same stream arrived, the message
 * that completes the gap is delivered and the ones after it stay buffered
 * until the stream's next chunk arrives, which may be never: a request
 * waits for its answer, and a channel stalls for good. Running werift's
 * pass again until it yields nothing delivers them.
 */
export function deliverReordered(sctp: SctpAssociation): void {
  const fixed = new WeakSet<InboundStream>();
  const getInboundStream = sctp.getInboundStream.bind(sctp);
  sctp.getInboundStream = (streamId) => {
    const stream = getInboundStream(streamId);
    if (!fixed.has(stream)) {
      fixed.add(stream);
      const popMessages = stream.popMessages.bind(stream);
      stream.popMessages = function* () {
        for (let more = true; more;) {
          more = false;
          for (const message of popMessages()) {
            more = true;
            yield message;
          }
        }
      };
    }
    return stream;
  };
}

/** The associations {@linkcode guardTimerStarts} has patched. */
const timersGuarded = new WeakSet<SctpAssociation>();

/**
 * Makes werift's T1 and T2 starts harmless when the timer is already running
 * or the association has closed. Once per association; a second call does
 * nothing.
 *
 * Already running: `timer1Start` and `t2Start` throw a bare `Error` if their
 * timer is set. werift handles each packet in an async call nobody awaits,
 * so two packets that arrive together are handled interleaved: both pass the
 * checks before the first `await` (sending the answer), and the second one
 * to resume starts the timer again. A SHUTDOWN that arrives twice (the peer
 * sent it again because our SHUTDOWN ACK was late; seen closing a /webrtc
 * connection with node-datachannel) throws from `t2Start`, an INIT ACK that
 * arrives twice from `timer1Start`, and either is an unhandled rejection
 * that ends the process. The timer that is running already retransmits the
 * same chunk (a SHUTDOWN ACK; a COOKIE ECHO with a cookie the peer accepts),
 * so the second start is dropped. T3 needs nothing: werift checks it is not
 * running, synchronously, before each start.
 *
 * Closed: werift answers a SHUTDOWN (libdatachannel sends one when it
 * closes) by sending a SHUTDOWN ACK and then starting T2; if the association
 * closed while the ACK was being sent, the timer starts after closing has
 * cleared them all, and runs for the retransmission timeout (up to a minute)
 * after the connection is gone. T1 has the same gap.
 */
export function guardTimerStarts(sctp: SctpAssociation): void {
  if (timersGuarded.has(sctp)) return;
  timersGuarded.add(sctp);
  const timer1Start = sctp.timer1Start.bind(sctp);
  const t2Start = sctp.t2Start.bind(sctp);
  sctp.timer1Start = (chunk) => {
    if (!sctp.isStopped && sctp.timer1Handle === undefined) timer1Start(chunk);
  };
  sctp.t2Start = (chunk) => {
    if (!sctp.isStopped && sctp.timer2Handle === undefined) t2Start(chunk);
  };
}

/** RFC 9260 section 16's RTO.Initial, in seconds. */
const RTO_INITIAL_S = 1;
/** RFC 9260's RTO.Min, which werift uses too, in seconds. */
const RTO_MIN_S = 1;
/** RFC 9260's RTO.Max, which werift uses too, in seconds. */
const RTO_MAX_S = 60;

/** The associations {@linkcode startRtoAtOneSecond} has patched. */
const rtoFixed = new WeakSet<SctpAssociation>();

/**
 * Starts werift's retransmission timeout at 1 s, RFC 9260's RTO.Initial,
 * not RFC 4960's 3 s, and keeps a completed stream reset from putting it
 * back at 3 s. Once per association, before `start()`; a second call does
 * nothing.
 *
 * werift sets the RTO back to its initial value whenever one of its stream
 * reset requests completes, meaning to undo the backoff of that request's
 * timer, so on a fresh association, or after any channel closed, a lost
 * chunk waited 3 s to be sent again. Chromium ignored werift's first reset
 * of `init` (why is not known; the same bytes sent again were answered at
 * once), and each `/webrtc` connection Chromium offered to werift took 3.2 s
 * instead of 0.2 s. After a completed reset the RTO is the one the measured
 * round trips give, as RFC 9260 computes it, or 1 s before there are any.
 */
export function startRtoAtOneSecond(sctp: SctpAssociation): void {
  if (rtoFixed.has(sctp)) return;
  rtoFixed.add(sctp);
  const measured = () =>
    sctp.srtt === undefined ? RTO_INITIAL_S : Math.max(
      RTO_MIN_S,
      Math.min(sctp.srtt + 4 * (sctp.rttvar ?? 0), RTO_MAX_S),
    );
  if (sctp.srtt === undefined) sctp.rto = RTO_INITIAL_S;
  const receiveParam = sctp.receiveReconfigParam.bind(sctp);
  sctp.receiveReconfigParam = (param) => {
    const completes = completesRequest(sctp, param);
    // werift resets the RTO before its first await.
    const handled = receiveParam(param);
    if (completes) sctp.rto = measured();
    return handled;
  };
}

/** The associations {@linkcode bundleData} has patched. */
const bundled = new WeakSet<SctpAssociation>();

/** The SCTP common header: ports, verification tag and checksum. */
const SCTP_COMMON_HEADER_SIZE = 12;
/** The chunk type of DATA. */
const SCTP_DATA = 0;

/**
 * Bundles the DATA chunks of one transmission round into as few packets as
 * werift's own MTU allows, as RFC 4960 section 6.10 lets a sender do.
 *
 * werift sends every chunk in a packet of its own, and the packet, not the
 * byte, is what costs it: a DTLS record, a UDP send and a SACK to process on
 * the other side, all on the JavaScript thread. A stream frame goes out as
 * two messages (a few bytes of length prefix, then the body), so without
 * bundling a stream sent one packet more per 16 KiB than a bare channel;
 * with it the prefix rides with the end of the previous body. A packet is
 * never larger than the largest werift would send on its own.
 *
 * DATA chunks are held while a round runs and sent when the next one would
 * not fit, when any other chunk (a SACK, say) is sent, and when the round
 * ends; the order on the wire is werift's.
 */
export function bundleData(sctp: SctpAssociation): void {
  if (bundled.has(sctp)) return;
  bundled.add(sctp);
  const sendChunk = sctp.sendChunk.bind(sctp);
  const transmitOnce = sctp.transmitOnce.bind(sctp);
  const budget = sctp.mtu - SCTP_COMMON_HEADER_SIZE;
  let held: Buffer[] = [];
  let heldBytes = 0;
  const flush = (): Promise<void> => {
    if (held.length === 0) return Promise.resolve();
    const bytes = held.length === 1 ? held[0] : Buffer.concat(held, heldBytes);
    held = [];
    heldBytes = 0;
    // werift's sendChunk frames whatever `bytes` holds as one packet.
    return sendChunk({ type: SCTP_DATA, bytes });
  };
  sctp.sendChunk = async (chunk) => {
    // As werift's own sends, a failed one is left to retransmission.
    if (chunk.type !== SCTP_DATA) {
      await flush().catch(() => {});
      return sendChunk(chunk);
    }
    const bytes = chunk.bytes;
    if (heldBytes + bytes.byteLength > budget) await flush().catch(() => {});
    held.push(bytes);
    heldBytes += bytes.byteLength;
  };
  sctp.transmitOnce = async () => {
    try {
      await transmitOnce();
    } finally {
      await flush().catch(() => {});
    }
  };
}
