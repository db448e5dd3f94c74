import assert from "node:assert/strict";
import type { CertificateFingerprint } from "../core/backend.ts";
import { decodeCerthash } from "../core/certhash.ts";
import { InvalidFingerprintError } from "../core/errors.ts";
import {
  NOISE_PROLOGUE_PREFIX,
  noisePrologue,
} from "../core/noise_prologue.ts";

// The spec's test vector (webrtc-direct.md).
const CLIENT_HEX =
  "3e79af40d6059617a0d83b83a52ce73b0c1f37a72c6043ad2969e2351bdca870";
const SERVER_HEX =
  "30fc9f469c207419dfdd0aab5f27a86c973c94e40548db9375cca2e915973b99";
const PROLOGUE_HEX = "6c69627032702d7765627274632d6e6f6973653a" +
  "1220" + CLIENT_HEX + "1220" + SERVER_HEX;

function fromHex(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g)!, (byte) => parseInt(byte, 16));
}

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const CLIENT: CertificateFingerprint = {
  algorithm: "sha-256",
  digest: fromHex(CLIENT_HEX),
};
const SERVER: CertificateFingerprint = {
  algorithm: "sha-256",
  digest: fromHex(SERVER_HEX),
};

Deno.test("noise prologue: the spec's test vector", () => {
  const prologue = noisePrologue({ dialer: CLIENT, listener: SERVER });
  assert.equal(prologue.length, 88);
  assert.equal(toHex(prologue), PROLOGUE_HEX);
});

Deno.test("noise prologue: the listener's fingerprint can come from the certhash", () => {
  const listener = decodeCerthash(
    "uEiAw_J9GnCB0Gd_dCqtfJ6hslzyU5AVI25N1zKLpFZc7mQ",
  );
  assert.equal(
    toHex(noisePrologue({ dialer: CLIENT, listener })),
    PROLOGUE_HEX,
  );
});

Deno.test("noise prologue: the prefix is the 20 ASCII bytes of the spec", () => {
  assert.equal(NOISE_PROLOGUE_PREFIX.length, 20);
  assert.equal(
    toHex(new TextEncoder().encode(NOISE_PROLOGUE_PREFIX)),
    "6c69627032702d7765627274632d6e6f6973653a",
  );
});

Deno.test("noise prologue: swapping the roles changes it (order is by role)", () => {
  const right = noisePrologue({ dialer: CLIENT, listener: SERVER });
  const swapped = noisePrologue({ dialer: SERVER, listener: CLIENT });
  assert.notDeepEqual(right, swapped);
  assert.deepEqual(swapped.subarray(22, 54), SERVER.digest);
});

Deno.test("noise prologue: fingerprints that are not sha-256/32 are refused", () => {
  const short = { algorithm: "sha-256", digest: new Uint8Array(31) };
  const sha1 = { algorithm: "sha-1", digest: new Uint8Array(32) };
  for (const bad of [short, sha1, undefined]) {
    const fingerprint = bad as unknown as CertificateFingerprint;
    assert.throws(
      () => noisePrologue({ dialer: fingerprint, listener: SERVER }),
      InvalidFingerprintError,
    );
    assert.throws(
      () => noisePrologue({ dialer: CLIENT, listener: fingerprint }),
      InvalidFingerprintError,
    );
  }
});
