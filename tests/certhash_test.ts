import assert from "node:assert/strict";
import { bases } from "multiformats/basics";
import {
  decodeCerthash,
  encodeCerthash,
  fingerprintFromHex,
  fingerprintToHex,
  fingerprintToMultihash,
  formatSdpFingerprint,
  multihashToFingerprint,
  parseSdpFingerprint,
} from "../core/certhash.ts";
import type { CertificateFingerprint } from "../core/backend.ts";
import {
  InvalidCerthashError,
  InvalidFingerprintError,
  UnsupportedCerthashError,
} from "../core/errors.ts";
import { random, randomBytes } from "./random.ts";

// The spec's test vector (webrtc-direct.md, Noise prologue example).
const SERVER_HEX =
  "30fc9f469c207419dfdd0aab5f27a86c973c94e40548db9375cca2e915973b99";
const SERVER_CERTHASH = "uEiAw_J9GnCB0Gd_dCqtfJ6hslzyU5AVI25N1zKLpFZc7mQ";

function fromHex(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g)!, (byte) => parseInt(byte, 16));
}

function sha256(digest: Uint8Array): CertificateFingerprint {
  return { algorithm: "sha-256", digest };
}

const SERVER = sha256(fromHex(SERVER_HEX));

Deno.test("certhash: the spec's server fingerprint encodes to its certhash and back", () => {
  assert.equal(encodeCerthash(SERVER), SERVER_CERTHASH);
  assert.deepEqual(decodeCerthash(SERVER_CERTHASH), SERVER);
});

Deno.test("certhash: the multihash is 12 20 followed by the digest", () => {
  const multihash = fingerprintToMultihash(SERVER);
  assert.deepEqual(multihash, fromHex("1220" + SERVER_HEX));
  assert.deepEqual(multihashToFingerprint(multihash), SERVER);
});

Deno.test("certhash: every multibase multiformats knows decodes", () => {
  const multihash = fingerprintToMultihash(SERVER);
  for (const base of Object.values(bases)) {
    const text = base.encoder.encode(multihash);
    assert.deepEqual(decodeCerthash(text), SERVER, base.name);
  }
  // The ones the brief names, spelled out.
  for (const prefix of ["u", "z", "b", "f", "F", "B", "m", "U"]) {
    const base = Object.values(bases).find((b) => b.prefix === prefix)!;
    assert.deepEqual(decodeCerthash(base.encoder.encode(multihash)), SERVER);
  }
});

Deno.test("certhash: the decoded digest is a copy", () => {
  const multihash = fingerprintToMultihash(SERVER);
  const decoded = multihashToFingerprint(multihash);
  multihash[2] ^= 0xff;
  assert.equal(decoded.digest[0], 0x30);
});

Deno.test("certhash: encode and decode are inverse on random digests (seeded)", () => {
  const seed = 0xce27;
  const next = random(seed);
  for (let i = 0; i < 500; i++) {
    const fingerprint = sha256(randomBytes(next, 32));
    const text = encodeCerthash(fingerprint);
    assert.match(text, /^uEi[A-Za-z0-9_-]{44}$/, `seed ${seed}, round ${i}`);
    assert.deepEqual(decodeCerthash(text), fingerprint, `seed ${seed}`);
    const hex = fingerprintToHex(fingerprint);
    assert.deepEqual(fingerprintFromHex(hex), fingerprint);
    assert.deepEqual(fingerprintFromHex(hex.toLowerCase()), fingerprint);
    assert.deepEqual(
      parseSdpFingerprint(formatSdpFingerprint(fingerprint)),
      fingerprint,
    );
  }
});

Deno.test("certhash: other hash functions and lengths are unsupported, typed", () => {
  const cases: [string, number, number][] = [
    ["1340" + "00".repeat(64), 0x13, 64], // sha2-512
    ["1114" + "00".repeat(20), 0x11, 20], // sha1
    ["0004deadbeef", 0x00, 4], // identity
    ["1214" + "00".repeat(20), 0x12, 20], // truncated sha2-256
    ["1240" + "00".repeat(64), 0x12, 64], // sha2-256 with 64 bytes
  ];
  for (const [hex, code, length] of cases) {
    const text = bases.base64url.encode(fromHex(hex));
    assert.throws(
      () => decodeCerthash(text),
      (error: unknown) =>
        error instanceof UnsupportedCerthashError &&
        error.code === "ERR_UNSUPPORTED_CERTHASH" && error.hashCode === code &&
        error.digestLength === length,
      hex,
    );
  }
  // blake2b-256 (0xb220, a two-byte varint code) with a 32-byte digest.
  const blake = new Uint8Array([0xa0, 0xe4, 0x02, 0x20, ...new Uint8Array(32)]);
  assert.throws(
    () => decodeCerthash(bases.base64url.encode(blake)),
    (error: unknown) =>
      error instanceof UnsupportedCerthashError && error.hashCode === 0xb220 &&
      error.digestLength === 32,
  );
});

Deno.test("certhash: text that is not a multibase multihash is invalid, typed", () => {
  const good = fingerprintToMultihash(SERVER);
  const cases: unknown[] = [
    "",
    "u",
    "x" + SERVER_CERTHASH.slice(1), // unknown multibase prefix
    "u!!!!", // outside the alphabet
    SERVER_CERTHASH + "\r\n",
    " " + SERVER_CERTHASH,
    "zz0OIl", // not base58btc
    "f123", // odd hex
    "fzz",
    "🚀", // base256emoji prefix alone: empty multihash
    bases.base64url.encode(good.subarray(0, 33)), // truncated digest
    bases.base64url.encode(new Uint8Array([...good, 0])), // trailing byte
    bases.base64url.encode(new Uint8Array([0x12])), // no length
    bases.base64url.encode(new Uint8Array([0x80, 0x80, 0x80])), // open varint
    "u" + "A".repeat(2000), // absurdly long
    42,
    null,
    undefined,
  ];
  for (const value of cases) {
    assert.throws(
      () => decodeCerthash(value as string),
      (error: unknown) =>
        error instanceof InvalidCerthashError &&
        error.code === "ERR_INVALID_CERTHASH",
      String(value).slice(0, 40),
    );
  }
});

Deno.test("certhash: random and mutated text gives a fingerprint or a typed error (seeded)", () => {
  const seed = 0xbad5eed;
  const next = random(seed);
  const alphabet =
    "uzbfFBUmM🚀0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_+/=:\r\n\0 é";
  const chars = [...alphabet];
  for (let i = 0; i < 3000; i++) {
    let text: string;
    if (i % 2 === 0) {
      const length = Math.floor(next() * 80);
      text = Array.from(
        { length },
        () => chars[Math.floor(next() * chars.length)],
      ).join("");
    } else {
      // Flip one character of a valid certhash.
      const at = Math.floor(next() * SERVER_CERTHASH.length);
      const c = chars[Math.floor(next() * chars.length)];
      text = SERVER_CERTHASH.slice(0, at) + c + SERVER_CERTHASH.slice(at + 1);
    }
    try {
      const fingerprint = decodeCerthash(text);
      assert.equal(fingerprint.algorithm, "sha-256");
      assert.equal(fingerprint.digest.length, 32);
    } catch (error) {
      assert.ok(
        error instanceof InvalidCerthashError ||
          error instanceof UnsupportedCerthashError,
        `seed ${seed}, round ${i}, ${JSON.stringify(text)}: ${error}`,
      );
    }
  }
});

Deno.test("certhash: SDP hex is uppercase with colons; lowercase is read too", () => {
  const hex = fingerprintToHex(SERVER);
  assert.equal(hex, SERVER_HEX.toUpperCase().match(/../g)!.join(":"));
  assert.deepEqual(fingerprintFromHex(hex.toLowerCase()), SERVER);
  const mixed = hex.split(":").map((b, i) => i % 2 ? b.toLowerCase() : b)
    .join(":");
  assert.deepEqual(fingerprintFromHex(mixed), SERVER);
  assert.equal(formatSdpFingerprint(SERVER), `sha-256 ${hex}`);
});

Deno.test("certhash: a=fingerprint values: case-insensitive hash name, sha-256 only", () => {
  const hex = fingerprintToHex(SERVER);
  assert.deepEqual(parseSdpFingerprint(`SHA-256 ${hex}`), SERVER);
  assert.deepEqual(parseSdpFingerprint(`sha-256\t${hex}`), SERVER);
  assert.deepEqual(
    parseSdpFingerprint(`sha-256  ${hex.toLowerCase()}`),
    SERVER,
  );
  for (
    const value of [
      `sha-1 ${hex.slice(0, 59)}`,
      `sha-512 ${hex}`,
      `sha256 ${hex}`,
      hex,
      `sha-256 ${hex}\r\na=evil:1`,
      `sha-256 ${hex} extra`,
      "",
      `sha-256`,
    ]
  ) {
    assert.throws(
      () => parseSdpFingerprint(value),
      InvalidFingerprintError,
      value,
    );
  }
});

Deno.test("certhash: malformed hex fingerprints are refused, typed", () => {
  const hex = fingerprintToHex(SERVER);
  for (
    const value of [
      "",
      hex.slice(0, -3), // 31 bytes
      `${hex}:00`, // 33 bytes
      hex.replaceAll(":", ""), // no colons
      hex.replaceAll(":", "-"),
      `${hex}\n`,
      `${hex}\r\n`,
      ` ${hex}`,
      hex.replace("30", "3G"),
      hex.replace("30", "3"),
      hex.replace("30", "300"),
      hex.replace(":", "::"),
    ]
  ) {
    assert.throws(
      () => fingerprintFromHex(value),
      (error: unknown) =>
        error instanceof InvalidFingerprintError &&
        error.code === "ERR_INVALID_FINGERPRINT",
      JSON.stringify(value),
    );
  }
});

Deno.test("certhash: a fingerprint that is not sha-256/32 cannot be encoded", () => {
  const bad = [
    sha256(new Uint8Array(31)),
    sha256(new Uint8Array(33)),
    sha256(new Uint8Array(0)),
    { algorithm: "sha-1", digest: new Uint8Array(32) },
    { algorithm: "SHA-256", digest: new Uint8Array(32) },
    { algorithm: "sha-256", digest: Array(32).fill(0) },
    { algorithm: "sha-256" },
    null,
  ] as unknown as CertificateFingerprint[];
  for (const fingerprint of bad) {
    for (
      const encode of [
        encodeCerthash,
        fingerprintToMultihash,
        fingerprintToHex,
        formatSdpFingerprint,
      ]
    ) {
      assert.throws(
        () => encode(fingerprint),
        InvalidFingerprintError,
        `${encode.name}(${JSON.stringify(fingerprint)})`,
      );
    }
  }
});
