/**
 * The few SDP and PEM readings the libdatachannel backend needs.
 *
 * Internal to the backend; the core has its own SDP helpers for libp2p.
 *
 * @module
 */

import type {
  CertificateFingerprint,
  IceCredentials,
} from "../../core/backend.ts";
import { P2prtcError } from "../../core/errors.ts";

// RFC 8445 ice-char, with the lengths RFC 8839 gives. libdatachannel aborts
// the whole process on credentials it refuses, so they are checked here.
const ICE_UFRAG = /^[A-Za-z0-9+/]{4,256}$/;
const ICE_PWD = /^[A-Za-z0-9+/]{22,256}$/;

/** Throws unless both credentials are ones libdatachannel accepts. */
export function checkCredentials(credentials: IceCredentials): void {
  if (!ICE_UFRAG.test(credentials.ufrag)) {
    throw new P2prtcError(
      "ERR_INVALID_ICE_CREDENTIALS",
      "an ICE ufrag is 4 to 256 characters of A-Z a-z 0-9 + /",
    );
  }
  if (!ICE_PWD.test(credentials.pwd)) {
    throw new P2prtcError(
      "ERR_INVALID_ICE_CREDENTIALS",
      "an ICE password is 22 to 256 characters of A-Z a-z 0-9 + /",
    );
  }
}

/** The value of the first `a=<name>:` line, or `undefined`. */
export function attribute(sdp: string, name: string): string | undefined {
  const match = new RegExp(`^a=${name}:(.*?)\\s*$`, "m").exec(sdp);
  return match?.[1];
}

/** The ICE credentials an SDP announces, if it has both. */
export function credentialsOf(sdp: string): IceCredentials | undefined {
  const ufrag = attribute(sdp, "ice-ufrag");
  const pwd = attribute(sdp, "ice-pwd");
  return ufrag === undefined || pwd === undefined ? undefined : { ufrag, pwd };
}

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
