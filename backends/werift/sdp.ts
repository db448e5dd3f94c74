/**
 * What the werift backend adds to the core's SDP helpers: comparing and
 * checking ICE credentials, and spotting mDNS candidates.
 *
 * Internal to the werift backend.
 *
 * @module
 */

import type { IceCredentials } from "../../core/backend.ts";
import { candidateAddress, filterCandidates } from "../../core/sdp.ts";

/** Whether two sets of credentials are the same. */
export function sameCredentials(a: IceCredentials, b: IceCredentials): boolean {
  return a.ufrag === b.ufrag && a.pwd === b.pwd;
}

/** Whether a candidate (with or without `a=`) has a `.local` mDNS address. */
export function isMdnsCandidate(candidate: string): boolean {
  return candidateAddress(candidate)?.toLowerCase().endsWith(".local") ??
    false;
}

/** `sdp` without its mDNS candidate lines. */
export function dropMdnsCandidates(sdp: string): string {
  return filterCandidates(sdp, (candidate) => !isMdnsCandidate(candidate));
}
