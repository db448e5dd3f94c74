/**
 * The DTLS certificate fingerprint in its three spellings: the multiaddr
 * `certhash` text (a multibase multihash), the raw multihash bytes (which the
 * Noise prologue uses) and the SDP `a=fingerprint` value.
 *
 * Only sha-256 is supported. The spec requires it, go tags both prologue
 * multihashes as sha2-256 whatever the certificate, and refusing anything else
 * here means a bad address fails before a single packet is sent.
 *
 * @module
 */

import { base64url } from "multiformats/bases/base64";
import { bases } from "multiformats/basics";
import * as Digest from "multiformats/hashes/digest";
import type { CertificateFingerprint } from "./backend.ts";
import {
  InvalidCerthashError,
  InvalidFingerprintError,
  UnsupportedCerthashError,
} from "./errors.ts";

/** The multihash code of sha2-256. */
export const SHA2_256_CODE = 0x12;

/** The length of a sha-256 digest, in bytes. */
export const SHA2_256_LENGTH = 32;

// Every base multiformats knows, by its prefix (one code point: base256emoji's
// is a rocket, so `text[0]` would not do).
const basesByPrefix = new Map(
  Object.values(bases).map((base) => [base.prefix as string, base.decoder]),
);

/**
 * Checks that `fingerprint` is a sha-256 fingerprint with a 32-byte digest.
 *
 * Callers in JavaScript (or with data from a backend) can pass anything, and
 * a wrong digest length would otherwise surface as a DTLS failure much later.
 */
function checkFingerprint(fingerprint: CertificateFingerprint): Uint8Array {
  if (fingerprint?.algorithm !== "sha-256") {
    throw new InvalidFingerprintError(
      `fingerprint algorithm ${
        JSON.stringify(fingerprint?.algorithm)
      } is not supported; only sha-256 is`,
    );
  }
  const digest = fingerprint.digest;
  if (
    !(digest instanceof Uint8Array) || digest.length !== SHA2_256_LENGTH
  ) {
    throw new InvalidFingerprintError(
      `a sha-256 fingerprint has a ${SHA2_256_LENGTH}-byte digest, got ${
        digest instanceof Uint8Array ? `${digest.length} bytes` : typeof digest
      }`,
    );
  }
  return digest;
}

/**
 * The multihash of a fingerprint: `12 20` followed by the 32 digest bytes.
 *
 * This is the certhash component's binary value and the unit the Noise
 * prologue is built from.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fingerprintToMultihash } from "./certhash.ts";
 *
 * const multihash = fingerprintToMultihash({
 *   algorithm: "sha-256",
 *   digest: new Uint8Array(32).fill(0xab),
 * });
 * assert.equal(multihash.length, 34);
 * assert.deepEqual([...multihash.subarray(0, 3)], [0x12, 0x20, 0xab]);
 * ```
 *
 * @throws {InvalidFingerprintError} if it is not a 32-byte sha-256 digest.
 */
export function fingerprintToMultihash(
  fingerprint: CertificateFingerprint,
): Uint8Array {
  const digest = checkFingerprint(fingerprint);
  const multihash = new Uint8Array(2 + SHA2_256_LENGTH);
  multihash[0] = SHA2_256_CODE;
  multihash[1] = SHA2_256_LENGTH;
  multihash.set(digest, 2);
  return multihash;
}

/**
 * Reads a multihash as a fingerprint. Only sha2-256 with 32 bytes is accepted.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { multihashToFingerprint } from "./certhash.ts";
 *
 * const bytes = new Uint8Array(34);
 * bytes.set([0x12, 0x20]);
 * assert.equal(multihashToFingerprint(bytes).digest.length, 32);
 * assert.throws(() => multihashToFingerprint(new Uint8Array([0x13, 0x01, 0])));
 * ```
 *
 * @throws {InvalidCerthashError} if the bytes are not one whole multihash.
 * @throws {UnsupportedCerthashError} if the multihash is not sha2-256/32.
 */
export function multihashToFingerprint(
  multihash: Uint8Array,
): CertificateFingerprint {
  let decoded: { code: number; size: number; digest: Uint8Array };
  try {
    decoded = Digest.decode(multihash);
  } catch (cause) {
    throw new InvalidCerthashError(
      `not a multihash (${(cause as Error)?.message ?? cause})`,
      { cause },
    );
  }
  if (decoded.code !== SHA2_256_CODE || decoded.size !== SHA2_256_LENGTH) {
    throw new UnsupportedCerthashError(decoded.code, decoded.size);
  }
  // A copy, so the caller's buffer can be reused and ours cannot be changed.
  return { algorithm: "sha-256", digest: decoded.digest.slice() };
}

/**
 * Encodes a fingerprint as the text of a multiaddr `certhash` component:
 * multibase base64url without padding (prefix `u`) of the multihash, the form
 * every implementation must accept.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeCerthash, fingerprintFromHex } from "./certhash.ts";
 *
 * const fingerprint = fingerprintFromHex(
 *   "30:FC:9F:46:9C:20:74:19:DF:DD:0A:AB:5F:27:A8:6C:" +
 *     "97:3C:94:E4:05:48:DB:93:75:CC:A2:E9:15:97:3B:99",
 * );
 * assert.equal(
 *   encodeCerthash(fingerprint),
 *   "uEiAw_J9GnCB0Gd_dCqtfJ6hslzyU5AVI25N1zKLpFZc7mQ",
 * );
 * ```
 *
 * @throws {InvalidFingerprintError} if it is not a 32-byte sha-256 digest.
 */
export function encodeCerthash(fingerprint: CertificateFingerprint): string {
  return base64url.encode(fingerprintToMultihash(fingerprint));
}

/**
 * Decodes the text of a multiaddr `certhash` component into a fingerprint.
 *
 * Any multibase the `multiformats` library knows is accepted (base64url `u`,
 * base58btc `z`, base32 `b`, hex `f` and others), since go re-encodes
 * certhashes but other peers may not. Only sha2-256 with a 32-byte digest is.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeCerthash, fingerprintToHex } from "./certhash.ts";
 *
 * const fingerprint = decodeCerthash(
 *   "uEiAw_J9GnCB0Gd_dCqtfJ6hslzyU5AVI25N1zKLpFZc7mQ",
 * );
 * assert.equal(fingerprint.algorithm, "sha-256");
 * assert.ok(fingerprintToHex(fingerprint).startsWith("30:FC:9F:46"));
 * ```
 *
 * @throws {InvalidCerthashError} if the text is not a multibase multihash.
 * @throws {UnsupportedCerthashError} if the multihash is not sha2-256/32.
 */
export function decodeCerthash(certhash: string): CertificateFingerprint {
  if (typeof certhash !== "string" || certhash.length === 0) {
    throw new InvalidCerthashError("a certhash is a non-empty string");
  }
  // A sha-256 multihash is 34 bytes, under 300 characters in any base;
  // refusing longer text bounds the work an address can make us do.
  if (certhash.length > 512) {
    throw new InvalidCerthashError(
      `certhash of ${certhash.length} characters is too long`,
    );
  }
  const prefix = String.fromCodePoint(certhash.codePointAt(0)!);
  const decoder = basesByPrefix.get(prefix);
  if (decoder === undefined) {
    throw new InvalidCerthashError(
      `certhash ${JSON.stringify(certhash.slice(0, 64))} starts with ${
        JSON.stringify(prefix)
      }, which is no multibase prefix`,
    );
  }
  let bytes: Uint8Array;
  try {
    bytes = decoder.decode(certhash);
  } catch (cause) {
    throw new InvalidCerthashError(
      `certhash ${JSON.stringify(certhash)} is not multibase (${
        (cause as Error)?.message ?? cause
      })`,
      { cause },
    );
  }
  return multihashToFingerprint(bytes);
}

const HEX_FINGERPRINT = /^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){31}$/;

/**
 * Spells a fingerprint's digest as SDP does: uppercase hex bytes separated by
 * colons, `AB:CD:...` (RFC 8122; uppercase is what browsers write).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fingerprintToHex } from "./certhash.ts";
 *
 * const hex = fingerprintToHex({
 *   algorithm: "sha-256",
 *   digest: new Uint8Array(32).fill(0xab),
 * });
 * assert.equal(hex, Array(32).fill("AB").join(":"));
 * ```
 *
 * @throws {InvalidFingerprintError} if it is not a 32-byte sha-256 digest.
 */
export function fingerprintToHex(fingerprint: CertificateFingerprint): string {
  const digest = checkFingerprint(fingerprint);
  let hex = "";
  for (let i = 0; i < digest.length; i++) {
    if (i > 0) hex += ":";
    hex += digest[i].toString(16).padStart(2, "0").toUpperCase();
  }
  return hex;
}

/**
 * Reads a sha-256 digest spelled as 32 colon-separated hex bytes, in either
 * case (some stacks write lowercase).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fingerprintFromHex } from "./certhash.ts";
 *
 * const fingerprint = fingerprintFromHex(Array(32).fill("ab").join(":"));
 * assert.equal(fingerprint.digest[31], 0xab);
 * assert.throws(() => fingerprintFromHex("AB:CD"));
 * ```
 *
 * @throws {InvalidFingerprintError} if it is not 32 colon-separated hex bytes.
 */
export function fingerprintFromHex(hex: string): CertificateFingerprint {
  if (typeof hex !== "string" || !HEX_FINGERPRINT.test(hex)) {
    throw new InvalidFingerprintError(
      "a sha-256 fingerprint is 32 hex bytes separated by colons",
    );
  }
  const digest = new Uint8Array(SHA2_256_LENGTH);
  for (let i = 0; i < SHA2_256_LENGTH; i++) {
    digest[i] = parseInt(hex.slice(i * 3, i * 3 + 2), 16);
  }
  return { algorithm: "sha-256", digest };
}

/**
 * The value of an SDP `a=fingerprint` attribute for a fingerprint:
 * `sha-256 AB:CD:...`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatSdpFingerprint } from "./certhash.ts";
 *
 * const value = formatSdpFingerprint({
 *   algorithm: "sha-256",
 *   digest: new Uint8Array(32),
 * });
 * assert.equal(value, "sha-256 " + Array(32).fill("00").join(":"));
 * ```
 *
 * @throws {InvalidFingerprintError} if it is not a 32-byte sha-256 digest.
 */
export function formatSdpFingerprint(
  fingerprint: CertificateFingerprint,
): string {
  return `sha-256 ${fingerprintToHex(fingerprint)}`;
}

/**
 * Reads the value of an SDP `a=fingerprint` attribute (the text after the
 * colon). The hash name is matched without regard to case, as RFC 8122 says,
 * and the hex in either case.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseSdpFingerprint } from "./certhash.ts";
 *
 * const fingerprint = parseSdpFingerprint(
 *   "SHA-256 " + Array(32).fill("0f").join(":"),
 * );
 * assert.equal(fingerprint.digest[0], 0x0f);
 * assert.throws(() => parseSdpFingerprint("sha-1 AB:CD"));
 * ```
 *
 * @throws {InvalidFingerprintError} if the algorithm is not sha-256 or the
 * hex is malformed.
 */
export function parseSdpFingerprint(value: string): CertificateFingerprint {
  const match = typeof value === "string"
    ? /^([A-Za-z0-9-]+)[ \t]+(\S+)$/.exec(value)
    : null;
  if (match === null) {
    throw new InvalidFingerprintError(
      "an a=fingerprint value is `<hash-func> <hex>`",
    );
  }
  if (match[1].toLowerCase() !== "sha-256") {
    throw new InvalidFingerprintError(
      `fingerprint algorithm ${
        JSON.stringify(match[1])
      } is not supported; only sha-256 is`,
    );
  }
  return fingerprintFromHex(match[2]);
}
