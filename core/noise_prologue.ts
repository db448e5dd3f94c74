/**
 * The Noise prologue of a WebRTC-Direct connection, which binds both DTLS
 * certificates into the handshake: a DTLS man-in-the-middle presents a
 * different certificate to each side, the two prologues then differ, and
 * Noise fails.
 *
 * @module
 */

import type { CertificateFingerprint } from "./backend.ts";
import { fingerprintToMultihash } from "./certhash.ts";

/** The ASCII prefix of every WebRTC-Direct Noise prologue. */
export const NOISE_PROLOGUE_PREFIX = "libp2p-webrtc-noise:";

const PREFIX_BYTES = new TextEncoder().encode(NOISE_PROLOGUE_PREFIX);

/** The two certificate fingerprints of a connection, named by role. */
export interface PrologueFingerprints {
  /**
   * The dialer's (the client's, the Noise responder's) fingerprint: the
   * local one on the dialer, the one seen in DTLS on the listener.
   */
  dialer: CertificateFingerprint;
  /**
   * The listener's (the server's, the Noise initiator's) fingerprint: the
   * certhash's on the dialer, the local one on the listener.
   */
  listener: CertificateFingerprint;
}

/**
 * The prologue both sides give Noise: `libp2p-webrtc-noise:`, then the
 * multihash of the dialer's fingerprint, then the listener's (88 bytes).
 *
 * The order follows the connection roles, not local/remote and not Noise
 * initiator first, which is why the fingerprints are passed by name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { noisePrologue } from "./noise_prologue.ts";
 *
 * const prologue = noisePrologue({
 *   dialer: { algorithm: "sha-256", digest: new Uint8Array(32).fill(1) },
 *   listener: { algorithm: "sha-256", digest: new Uint8Array(32).fill(2) },
 * });
 * assert.equal(prologue.length, 88);
 * assert.equal(new TextDecoder().decode(prologue.subarray(0, 20)), "libp2p-webrtc-noise:");
 * assert.deepEqual([...prologue.subarray(20, 23)], [0x12, 0x20, 1]);
 * assert.deepEqual([...prologue.subarray(54, 57)], [0x12, 0x20, 2]);
 * ```
 *
 * @throws {InvalidFingerprintError} if either is not a 32-byte sha-256
 * digest.
 */
export function noisePrologue(fingerprints: PrologueFingerprints): Uint8Array {
  const dialer = fingerprintToMultihash(fingerprints.dialer);
  const listener = fingerprintToMultihash(fingerprints.listener);
  const prologue = new Uint8Array(
    PREFIX_BYTES.length + dialer.length + listener.length,
  );
  prologue.set(PREFIX_BYTES, 0);
  prologue.set(dialer, PREFIX_BYTES.length);
  prologue.set(listener, PREFIX_BYTES.length + dialer.length);
  return prologue;
}
