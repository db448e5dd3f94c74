/**
 * A fresh self-signed ECDSA P-256 DTLS certificate for a WebRTC-Direct
 * listener, made with WebCrypto and a few lines of DER: no X.509 library.
 *
 * The certificate is minimal (X.509 v3 without extensions, `CN=p2prtc`, a
 * random serial), which is all DTLS needs: peers compare its hash with the
 * certhash and look at nothing else.
 *
 * @module
 */

import type { CertificateFingerprint, CertificatePem } from "./backend.ts";

/** A generated certificate, its key and its sha-256 fingerprint. */
export interface GeneratedCertificate {
  /** The PEM pair, for `PeerConnectionOptions.certificate`. */
  pem: CertificatePem;
  /** The sha-256 digest of the DER certificate (the certhash). */
  fingerprint: CertificateFingerprint;
}

/** Options for {@linkcode generateCertificate}. */
export interface GenerateCertificateOptions {
  /** Days of validity from now. Default 14, as js-libp2p. */
  days?: number;
}

const DAY = 86_400_000;

/**
 * Generates an ECDSA P-256 key and a self-signed certificate for it, valid
 * from a day ago (clock skew) for `days` days.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateCertificate } from "./certificate.ts";
 *
 * const { pem, fingerprint } = await generateCertificate();
 * assert.ok(pem.certificate.startsWith("-----BEGIN CERTIFICATE-----"));
 * assert.ok(pem.privateKey.startsWith("-----BEGIN PRIVATE KEY-----"));
 * assert.equal(fingerprint.digest.length, 32);
 * ```
 */
export async function generateCertificate(
  options: GenerateCertificateOptions = {},
): Promise<GeneratedCertificate> {
  const days = options.days ?? 14;
  const keys = await crypto.subtle.generateKey(
    { name: "ECDSA", namedCurve: "P-256" },
    true,
    ["sign", "verify"],
  );
  const spki = new Uint8Array(
    await crypto.subtle.exportKey("spki", keys.publicKey),
  );
  const pkcs8 = new Uint8Array(
    await crypto.subtle.exportKey("pkcs8", keys.privateKey),
  );
  const serial = crypto.getRandomValues(new Uint8Array(16));
  serial[0] &= 0x7f;
  serial[0] |= 0x01; // positive and without a leading zero byte
  const now = Date.now();
  const name = der(
    0x30,
    der(0x31, der(0x30, OID_CN, der(0x0c, ascii("p2prtc")))),
  );
  const tbs = der(
    0x30,
    der(0xa0, der(0x02, new Uint8Array([2]))), // v3
    der(0x02, serial),
    ECDSA_SHA256,
    name,
    der(
      0x30,
      utcTime(new Date(now - DAY)),
      utcTime(new Date(now + days * DAY)),
    ),
    name,
    spki,
  );
  const raw = new Uint8Array(
    await crypto.subtle.sign(
      { name: "ECDSA", hash: "SHA-256" },
      keys.privateKey,
      tbs,
    ),
  );
  const signature = der(
    0x30,
    derInteger(raw.subarray(0, 32)),
    derInteger(raw.subarray(32)),
  );
  const certificate = der(
    0x30,
    tbs,
    ECDSA_SHA256,
    der(0x03, new Uint8Array([0]), signature),
  );
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", certificate),
  );
  return {
    pem: {
      certificate: pem("CERTIFICATE", certificate),
      privateKey: pem("PRIVATE KEY", pkcs8),
    },
    fingerprint: { algorithm: "sha-256", digest },
  };
}

// 1.2.840.10045.4.3.2 ecdsa-with-SHA256, and 2.5.4.3 commonName.
const ECDSA_SHA256 = der(
  0x30,
  new Uint8Array([0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]),
);
const OID_CN = new Uint8Array([0x06, 0x03, 0x55, 0x04, 0x03]);

function ascii(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** One DER TLV with the parts concatenated as its content. */
function der(tag: number, ...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const length = parts.reduce((sum, part) => sum + part.length, 0);
  const header = length < 0x80
    ? [tag, length]
    : length < 0x100
    ? [tag, 0x81, length]
    : [tag, 0x82, length >> 8, length & 0xff];
  const out = new Uint8Array(header.length + length);
  out.set(header, 0);
  let offset = header.length;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** An unsigned big-endian integer as a minimal DER INTEGER. */
function derInteger(bytes: Uint8Array): Uint8Array {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  const trimmed = bytes.subarray(start);
  return trimmed[0] & 0x80
    ? der(0x02, new Uint8Array([0]), trimmed)
    : der(0x02, trimmed);
}

/** UTCTime (YYMMDDHHMMSSZ); GeneralizedTime from 2050, as RFC 5280 asks. */
function utcTime(date: Date): Uint8Array {
  const iso = date.toISOString(); // 2026-11-25T21:42:23.000Z
  const digits = iso.slice(0, 19).replace(/[-T:]/g, "");
  return date.getUTCFullYear() < 2050
    ? der(0x17, ascii(`${digits.slice(2)}Z`))
    : der(0x18, ascii(`${digits}Z`));
}

function pem(label: string, bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  const base64 = btoa(binary).replace(/.{64}/g, "$&\n").replace(/\n$/, "");
  return `-----BEGIN ${label}-----\n${base64}\n-----END ${label}-----\n`;
}
