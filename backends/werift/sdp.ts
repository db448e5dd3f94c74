/**
 * SDP and ICE text helpers: ICE credentials in and out of SDP, mDNS
 * candidates, fingerprint hex.
 *
 * Internal to the werift backend.
 *
 * @module
 */

import type { IceCredentials } from "../../core/backend.ts";
import { P2prtcError } from "../../core/errors.ts";

/** The first `a=ice-ufrag` and `a=ice-pwd` of `sdp`, if it has both. */
export function readIceCredentials(sdp: string): IceCredentials | undefined {
  const ufrag = /^a=ice-ufrag:(.*?)\r?$/m.exec(sdp)?.[1];
  const pwd = /^a=ice-pwd:(.*?)\r?$/m.exec(sdp)?.[1];
  return ufrag === undefined || pwd === undefined ? undefined : { ufrag, pwd };
}

/** `sdp` with every `a=ice-ufrag` and `a=ice-pwd` set to `credentials`. */
export function replaceIceCredentials(
  sdp: string,
  credentials: IceCredentials,
): string {
  return sdp
    .replace(/^a=ice-ufrag:.*?(\r?)$/gm, `a=ice-ufrag:${credentials.ufrag}$1`)
    .replace(/^a=ice-pwd:.*?(\r?)$/gm, `a=ice-pwd:${credentials.pwd}$1`);
}

/** Whether two sets of credentials are the same. */
export function sameCredentials(a: IceCredentials, b: IceCredentials): boolean {
  return a.ufrag === b.ufrag && a.pwd === b.pwd;
}

/**
 * Throws unless the credentials are valid for RFC 8839: ice-chars
 * (`A-Z a-z 0-9 + /`), a ufrag of 4 to 256 and a password of 22 to 256.
 */
export function assertIceCredentials({ ufrag, pwd }: IceCredentials): void {
  const ok = (s: string, min: number) =>
    s.length >= min && s.length <= 256 && /^[A-Za-z0-9+/]+$/.test(s);
  if (!ok(ufrag, 4) || !ok(pwd, 22)) {
    throw new P2prtcError(
      "ERR_INVALID_ICE_CREDENTIALS",
      "ICE ufrag must be 4..256 and password 22..256 ice-chars (A-Z a-z 0-9 + /)",
    );
  }
}

/** Whether a candidate (with or without `a=`) has a `.local` mDNS address. */
export function isMdnsCandidate(candidate: string): boolean {
  // candidate:<foundation> <component> <transport> <priority> <address> ...
  const address = candidate.replace(/^a=/, "").split(/\s+/)[4];
  return address !== undefined && address.toLowerCase().endsWith(".local");
}

/** `sdp` without its mDNS candidate lines. */
export function dropMdnsCandidates(sdp: string): string {
  return sdp.split(/(?<=\n)/)
    .filter((line) =>
      !(line.startsWith("a=candidate:") && isMdnsCandidate(line))
    )
    .join("");
}
