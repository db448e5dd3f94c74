/**
 * Fixes to how werift resets SCTP streams (RFC 6525), the way a data channel
 * closes (RFC 8831 section 6.7): each is installed on an association before
 * its first packet arrives.
 *
 * A stream id is used again as soon as both directions of the stream are
 * reset, and a peer may open its next channel on an id while werift's own
 * part of closing the last one is still under way. werift assumes the two
 * never overlap; these patches make them take turns.
 *
 * Internal to the werift backend.
 *
 * @module
 */

import type { Buffer } from "node:buffer";
import {
  completesRequest,
  DCEP_OPEN,
  PPID_DCEP,
  type SctpAssociation,
} from "./internals.ts";

/** The associations {@linkcode ackBeforeReset} has patched. */
const receiveHeld = new WeakSet<SctpAssociation>();

/**
 * Holds the events werift raises while it handles a received message (a
 * channel the peer opened, its `open`, a message) until werift is done with
 * it, so a channel the peer opened cannot be closed before werift has queued
 * its DCEP ACK. Once per association; a second call does nothing.
 *
 * werift announces a channel the peer opened, then queues the ACK. A handler
 * that closes the channel at once (the `/webrtc` answerer closes `init` as it
 * arrives) made werift send its stream-reset request first and the ACK after
 * it, as DATA on a stream it is resetting, with SSN 0. When the response to
 * the request arrives werift restarts the stream's SSN at 0, but the peer
 * has counted the ACK as SSN 0 of the stream's next use already, so when the
 * peer opens its next channel on that id (browsers reuse the lowest free
 * id), werift's messages on it start at SSN 0 again. Chromium's SCTP
 * (dcsctp) delivers an ordered stream only from its lowest buffered SSN, so
 * it held that stale message and everything after it, acknowledged and never
 * delivered, and the channel stalled for good; seen in 1 run in 4 with
 * Chromium offering (a werift peer lets the stale SSN through). When the
 * peer's own reset request for the stream arrives before the response,
 * werift resets the stream once more after the ACK and both sides agree,
 * which is why it was a race. With the ACK queued first, the channel waits
 * in `close()` until it is acknowledged (`data_channel.ts`), and the reset
 * covers it.
 *
 * `hold` runs its argument with the connection's events held back until it
 * returns.
 */
export function ackBeforeReset(
  sctp: SctpAssociation,
  hold: (fn: () => void) => void,
): void {
  if (receiveHeld.has(sctp)) return;
  receiveHeld.add(sctp);
  const receive = sctp.onReceive;
  const execute = receive.execute;
  receive.execute = (streamId, ppid, data) =>
    hold(() => execute(streamId, ppid, data));
}

/** The associations {@linkcode resetOnce} has patched. */
const resetsDeduplicated = new WeakSet<SctpAssociation>();

/**
 * Keeps werift from resetting a stream a second time, after the reset that
 * covered it has completed, when nothing was sent on it in between. Once per
 * association; a second call does nothing.
 *
 * werift queues a stream for an outgoing reset when the channel is closed
 * and when the peer resets its own direction of the stream (if werift has
 * sent on it). When both happen, the second arrives while the first request
 * is outstanding and werift sends it as a new request once the first has
 * completed. By then the peer may have reused the id for a new channel
 * (Chromium opens its next channel on the lowest free id as soon as both
 * directions are reset), and the late request resets that channel's stream:
 * Chromium closed it a second after opening (seen about 1 run in 20 with
 * Chromium offering over `/webrtc`, where both ends close `init` at once).
 * So when a request completes, the queued ids it covered that have carried
 * no DATA since it was built are dropped: the completed request has already
 * reset them.
 */
export function resetOnce(sctp: SctpAssociation): void {
  if (resetsDeduplicated.has(sctp)) return;
  resetsDeduplicated.add(sctp);
  /** Streams with DATA queued since the last request that covered them was built. */
  const sentSince = new Set<number>();
  let outstanding: { streams: number[] } | undefined;
  const send = sctp.send;
  sctp.send = (streamId, ppid, data, options) => {
    sentSince.add(streamId);
    return send(streamId, ppid, data, options);
  };
  const transmit = sctp.transmitReconfigRequest.bind(sctp);
  sctp.transmitReconfigRequest = () => {
    const result = transmit();
    // werift builds the request, and takes its last TSN, before its first await.
    const built = sctp.reconfigRequest;
    if (built && built !== outstanding) {
      outstanding = built;
      for (const id of built.streams) sentSince.delete(id);
    }
    return result;
  };
  const cancel = sctp.timerReconfigCancel.bind(sctp);
  sctp.timerReconfigCancel = () => {
    // werift cancels the timer when a request completes, after clearing it
    // and before sending what was queued meanwhile; closing cancels it too.
    const done = outstanding;
    if (done && sctp.reconfigRequest === undefined) {
      outstanding = undefined;
      sctp.reconfigQueue = sctp.reconfigQueue.filter((id) =>
        !done.streams.includes(id) || sentSince.has(id)
      );
    }
    cancel();
  };
}

/** The associations {@linkcode holdReopenedStreams} has patched. */
const reopenGuarded = new WeakSet<SctpAssociation>();

/**
 * How many messages {@linkcode holdReopenedStreams} takes off werift's hands
 * per association; past it a send waits, and werift's send loop with it.
 */
export const HELD_MESSAGES_MAX = 64;

/** A message held back, and what its sender waits on. */
interface Held {
  streamId: number;
  ppid: number;
  data: Buffer;
  options: { ordered: boolean };
  sent?: () => void;
}

/**
 * Lets the peer open a channel on a stream id while werift's reset of that
 * stream, from the channel that used it last, is still unanswered. Once per
 * association; a second call does nothing.
 *
 * A peer reuses an id once both directions of the stream are reset from its
 * side. libdatachannel answered a werift reset request "in progress" (werift
 * had sent the request ahead of DATA it covered), performed it when that
 * DATA arrived, and did not always send the later "performed" answer, so
 * werift waited a full retransmission timeout (1 s) for it while the peer
 * opened its next channel on the id. Then werift went wrong three ways:
 *
 * - it sent the DCEP ACK with the stream's old sequence number, since werift
 *   restarts numbering only when its request completes; the peer, whose
 *   numbering had restarted, held the ACK for good and its channel never
 *   opened;
 * - when the request completed, it closed the channel on that id, which was
 *   by now the new one;
 * - a second reset of the old channel's stream, queued when the peer reset
 *   its own direction, went out next and closed the new channel at the peer.
 *
 * Seen 1 run in 6 of js-libp2p opening a stream to a werift-backed node right
 * after the previous stream on the id closed. So when the peer opens a
 * channel on an id, a queued reset of it is dropped (it belongs to the old
 * channel, and the peer is past it); if werift's request for the id is out,
 * the channel's messages wait until it completes, as RFC 6525 section 5.1.2
 * asks of a sender, and then go out numbered from 0, and werift leaves the
 * channel open. At most {@linkcode HELD_MESSAGES_MAX} wait off werift's
 * hands; the ones after keep werift's send loop waiting too.
 */
export function holdReopenedStreams(
  sctp: SctpAssociation,
  channels: Record<number, unknown>,
): void {
  if (reopenGuarded.has(sctp)) return;
  reopenGuarded.add(sctp);
  /** Ids the peer opened a channel on while werift's request for them was out. */
  const reopened = new Set<number>();
  let held: Held[] = [];
  /** Set while werift handles the answer that completes its request. */
  let completing = false;

  const send = sctp.send;
  sctp.send = (streamId, ppid, data, options) => {
    if (!reopened.has(streamId)) return send(streamId, ppid, data, options);
    const message: Held = { streamId, ppid, data, options };
    held.push(message);
    if (held.length <= HELD_MESSAGES_MAX) return Promise.resolve();
    return new Promise((resolve) => message.sent = resolve);
  };
  const release = (ids: Iterable<number>) => {
    for (const id of ids) reopened.delete(id);
    const ready = held.filter((message) => !reopened.has(message.streamId));
    held = held.filter((message) => reopened.has(message.streamId));
    // werift numbers a message before its first await: order is kept.
    for (const { streamId, ppid, data, options, sent } of ready) {
      const sending = send(streamId, ppid, data, options);
      if (sent) sending.then(sent, sent);
    }
  };

  const receive = sctp.onReceive;
  const execute = receive.execute;
  receive.execute = (streamId, ppid, data) => {
    // A new channel: werift answers an OPEN for one it has as a resend.
    if (
      ppid === PPID_DCEP && data[0] === DCEP_OPEN &&
      channels[streamId] === undefined
    ) {
      sctp.reconfigQueue = sctp.reconfigQueue.filter((id) => id !== streamId);
      if (sctp.reconfigRequest?.streams.includes(streamId)) {
        reopened.add(streamId);
      }
    }
    execute(streamId, ppid, data);
  };

  const reconfigured = sctp.onReconfigStreams;
  const announce = reconfigured.execute;
  // The reset ids werift announces as it completes a request are the ones
  // the request covered; a reopened one is a new channel, not to be closed.
  reconfigured.execute = (ids) =>
    announce(completing ? ids.filter((id) => !reopened.has(id)) : ids);

  const receiveParam = sctp.receiveReconfigParam.bind(sctp);
  sctp.receiveReconfigParam = (param) => {
    const request = sctp.reconfigRequest;
    if (request === undefined || !completesRequest(sctp, param)) {
      return receiveParam(param);
    }
    completing = true;
    try {
      // werift restarts the streams' numbering, announces them reset and
      // sends the next request before its first await, so all of that is
      // done when this returns.
      return receiveParam(param);
    } finally {
      completing = false;
      release(request.streams);
    }
  };

  sctp.stateChanged.closed.subscribe(() => {
    reopened.clear();
    const waiting = held;
    held = [];
    for (const { sent } of waiting) sent?.();
  });
}
