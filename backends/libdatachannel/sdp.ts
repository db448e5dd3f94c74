/**
 * What the libdatachannel backend adds to the core's SDP helpers: checking
 * ICE credentials before libdatachannel sees them, a PEM fingerprint, and
 * taking candidates out of a remote description.
 *
 * Internal to the backend.
 *
 * @module
 */

import type { CertificateFingerprint } from "../../core/backend.ts";
import { P2prtcError } from "../../core/errors.ts";

/** The sha-256 fingerprint of the first certificate in a PEM text. */
export async function fingerprintOfPem(
  pem: string,
): Promise<CertificateFingerprint> {
  const match =
    /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----/
      .exec(pem);
  if (match === null) {
    throw new P2prtcError(
      "ERR_INVALID_CERTIFICATE",
      "the certificate is not a PEM `-----BEGIN CERTIFICATE-----` block",
    );
  }
  const der = Uint8Array.from(
    atob(match[1].replace(/\s+/g, "")),
    (c) => c.charCodeAt(0),
  );
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", der));
  return { algorithm: "sha-256", digest };
}

/** A candidate line taken out of an SDP, with the mid of its section. */
export interface SdpCandidate {
  /** The `candidate:...` value, without `a=`. */
  candidate: string;
  /** The `a=mid` of the media section it was in, if any. */
  sdpMid: string | null;
}

/**
 * Takes the `a=candidate` and `a=end-of-candidates` lines out of an SDP.
 * The candidates come back separately, to be added once the description is
 * applied; the end marker is dropped, because libjuice refuses any
 * candidate added after it.
 */
export function takeCandidates(
  sdp: string,
): { sdp: string; candidates: SdpCandidate[] } {
  const candidates: SdpCandidate[] = [];
  const kept: string[] = [];
  let mid: string | null = null;
  let pending: string[] = [];
  for (const line of sdp.split(/\r?\n/)) {
    if (line.startsWith("m=")) {
      // Candidates of the previous section are settled with its mid.
      for (const candidate of pending) {
        candidates.push({ candidate, sdpMid: mid });
      }
      pending = [];
      mid = null;
    }
    if (line.startsWith("a=mid:")) mid = line.slice(6).trim();
    if (line.startsWith("a=candidate:")) pending.push(line.slice(2).trim());
    else if (!line.startsWith("a=end-of-candidates")) kept.push(line);
  }
  for (const candidate of pending) candidates.push({ candidate, sdpMid: mid });
  return { sdp: kept.join("\r\n"), candidates };
}

/**
 * A host candidate for the address of an SDP's `c=` line and first
 * `m=application` port, or `undefined` when either is missing or the port
 * is 0. A WebRTC-Direct listener writes the dialer's STUN source address
 * there.
 */
export function candidateFromConnectionLine(
  sdp: string,
): SdpCandidate | undefined {
  const host = /^c=IN IP[46] ([0-9A-Fa-f.:]+)\r?$/m.exec(sdp)?.[1];
  const port = Number(/^m=application (\d{1,5}) /m.exec(sdp)?.[1]);
  if (host === undefined || !(port > 0 && port < 65536)) return undefined;
  const mid = /^a=mid:(\S+)\r?$/m.exec(sdp)?.[1] ?? null;
  return {
    candidate: `candidate:1 1 UDP 2130706431 ${host} ${port} typ host`,
    sdpMid: mid,
  };
}
