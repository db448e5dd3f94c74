/**
 * A plain werift `RTCPeerConnection` (not the werift backend) as the far end
 * of a test: a peer that is not ours, on loopback, with none of the
 * backend's fixes. It offers, our connection answers.
 *
 * @module
 */

import { RTCPeerConnection } from "werift";
import type { PeerConnection } from "../core/backend.ts";
import { delay } from "./stream_helpers.ts";

/** A plain werift peer gathering on 127.0.0.1 only, with no STUN server. */
export function plainWeriftPeer(): RTCPeerConnection {
  const plain = new RTCPeerConnection({
    iceServers: [],
    iceUseIpv4: false,
    iceUseIpv6: false,
    iceAdditionalHostAddresses: ["127.0.0.1"],
    iceInterfaceAddresses: { udp4: "127.0.0.1" },
  });
  for (const t of plain.iceTransports) {
    // Off werift's default public STUN server; this peer is not ours.
    (t.connection as unknown as { stunServer?: unknown }).stunServer =
      undefined;
  }
  return plain;
}

/**
 * Connects `plain` (which offers) with `ours` (which answers), trickling
 * candidates both ways. `offerApplied` runs once `plain` has applied its own
 * offer, when its SCTP association exists and before any packet can reach
 * it. Create the plain peer's channels before calling.
 */
export async function offerFromPlain(
  plain: RTCPeerConnection,
  ours: PeerConnection,
  offerApplied?: () => void,
): Promise<void> {
  plain.onIceCandidate.subscribe((c) => {
    if (c) void ours.addIceCandidate(c.toJSON());
  });
  ours.onicecandidate = (c) => void (c && plain.addIceCandidate(c));
  await plain.setLocalDescription(await plain.createOffer());
  offerApplied?.();
  await ours.setRemoteDescription({
    type: "offer",
    sdp: plain.localDescription!.sdp,
  });
  await ours.setLocalDescription(await ours.createAnswer());
  await plain.setRemoteDescription(ours.localDescription!);
}

/** Closes `plain` and waits out its DTLS flight timers, which nobody else will. */
export async function closePlain(plain: RTCPeerConnection): Promise<void> {
  await plain.close();
  await delay(600);
}
