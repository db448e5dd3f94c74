/**
 * The ECDSA P-256 DTLS certificate of a WebRTC-Direct listener: made fresh
 * with WebCrypto and a few lines of DER (no X.509 library), read back from
 * PEM, and kept in a file so that the advertised `/certhash` stays the same
 * across restarts.
 *
 * A generated certificate is minimal (X.509 v3 without extensions,
 * `CN=p2prtc`, a random serial), which is all DTLS needs: peers compare its
 * hash with the certhash and look at nothing else.
 *
 * @example Keep a listener's address across restarts
 * ```ts ignore
 * const certificate = await loadOrCreateCertificate("listener-cert.pem");
 * const identity = await loadOrCreateIdentity("listener.key");
 * // Same identity, certificate and port: the same multiaddr every time.
 * const listener = await new WebRTCTransport({ backend, identity })
 *   .listen("/ip4/127.0.0.1/udp/9090/webrtc-direct", { certificate });
 * ```
 *
 * @module
 */

import type { CertificateFingerprint, CertificatePem } from "./backend.ts";
import { P2prtcError } from "./errors.ts";
import {
  readIfExists,
  replaceFile,
  secretPath,
  writeIfAbsent,
} from "./secret_file.ts";

/** A certificate, its key and its sha-256 fingerprint. */
export interface GeneratedCertificate {
  /**
   * The PEM pair, for `PeerConnectionOptions.certificate`. This is also the
   * certificate's export form: {@linkcode importCertificate} reads it back.
   */
  pem: CertificatePem;
  /** The sha-256 digest of the DER certificate (the certhash). */
  fingerprint: CertificateFingerprint;
  /**
   * The end of the certificate's validity, in ms since the epoch, as in
   * `RTCCertificate.expires`. Set by every function of this module.
   */
  expires?: number;
}

/**
 * A certificate or private key could not be used: not PEM, not an X.509
 * certificate, not an ECDSA P-256 key in PKCS#8, or a key that does not
 * belong to the certificate. When it came from a file, `path` names it.
 */
export class InvalidCertificateError extends P2prtcError {
  /** The file the certificate was read from, if it came from one. */
  readonly path: string | undefined;

  /** Makes the error; `message` says what is wrong. */
  constructor(message: string, path?: string, options?: ErrorOptions) {
    super(
      "ERR_INVALID_CERTIFICATE",
      path === undefined ? message : `${path}: ${message}`,
      options,
    );
    this.path = path;
  }
}

/** Options for {@linkcode generateCertificate}. */
export interface GenerateCertificateOptions {
  /** Days of validity from now, more than 0. Default 14, as js-libp2p. */
  days?: number;
}

const DAY = 86_400_000;
/** Dates past year 9999 have no UTCTime or GeneralizedTime form. */
const MAX_DAYS = 36_500;

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
 *
 * @throws {RangeError} if `days` is not more than 0 and at most 36 500.
 */
export async function generateCertificate(
  options: GenerateCertificateOptions = {},
): Promise<GeneratedCertificate> {
  const days = options.days ?? 14;
  if (!(days > 0 && days <= MAX_DAYS)) {
    throw new RangeError(
      `a certificate is valid for more than 0 and at most ${MAX_DAYS} days, not ${days}`,
    );
  }
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
  // Whole seconds: that is all the certificate can say.
  const expires = Math.floor((now + days * DAY) / 1000) * 1000;
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
      utcTime(new Date(expires)),
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
  return {
    pem: {
      certificate: pem("CERTIFICATE", certificate),
      privateKey: pem("PRIVATE KEY", pkcs8),
    },
    fingerprint: await fingerprintOf(certificate),
    expires,
  };
}

/**
 * Reads a certificate and its private key back from PEM: a
 * {@linkcode CertificatePem} (the form {@linkcode GeneratedCertificate.pem}
 * and the backends take), or one text holding both blocks (the form
 * {@linkcode exportCertificate} writes). The certificate must be X.509 with
 * an ECDSA P-256 key, the private key that key's PKCS#8
 * (`-----BEGIN PRIVATE KEY-----`). Any such certificate will do, not only
 * ours; its validity dates are read but not enforced (see
 * {@linkcode loadOrCreateCertificate}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateCertificate, importCertificate } from "./certificate.ts";
 *
 * const original = await generateCertificate();
 * const again = await importCertificate(original.pem);
 * assert.deepEqual(again.fingerprint, original.fingerprint);
 * assert.equal(again.expires, original.expires);
 * ```
 *
 * @throws {InvalidCertificateError} if either is unusable or the key does
 * not belong to the certificate.
 */
export async function importCertificate(
  input: CertificatePem | string,
): Promise<GeneratedCertificate> {
  return await importFrom(input, undefined);
}

/**
 * A certificate and its key as one PEM text, the certificate block first:
 * what {@linkcode loadOrCreateCertificate} stores. It holds the private key,
 * so keep it private.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   exportCertificate,
 *   generateCertificate,
 *   importCertificate,
 * } from "./certificate.ts";
 *
 * const original = await generateCertificate();
 * const text = exportCertificate(original);
 * assert.deepEqual((await importCertificate(text)).pem, original.pem);
 * ```
 */
export function exportCertificate(certificate: GeneratedCertificate): string {
  return certificate.pem.certificate + certificate.pem.privateKey;
}

/** Options for {@linkcode loadOrCreateCertificate}. */
export interface LoadOrCreateCertificateOptions {
  /** Days of validity of a certificate made here. Default 365. */
  days?: number;
  /**
   * A stored certificate that expires within this many days (or has
   * expired) is replaced by a new one. Default 7; less than `days`.
   */
  renewWithinDays?: number;
}

/**
 * Loads the certificate stored at `path`, or, when there is no file there,
 * generates one and stores it (one PEM text, see
 * {@linkcode exportCertificate}) with mode 0o600, since it holds the private
 * key. A listener given the loaded certificate advertises the same certhash
 * after a restart, and with the same identity and port the same multiaddr.
 * Needs read and write permission for `path` and files beside it.
 *
 * Expiry, as decided here: WebRTC stacks compare the peer's certificate with
 * the fingerprint and ignore its dates, so an expired certificate would
 * still work; the validity only bounds how long a stolen key stays useful
 * for DTLS (Noise still proves the peer ID). A new certificate is valid for
 * `days` (365 by default, where js-libp2p rotates every 14, because the
 * point here is a stable address). A stored one that expires within
 * `renewWithinDays` (7 by default) is replaced with a new one at load time,
 * so the certhash, and the address, change about once a year, at a
 * restart; a listener that runs on never renews by itself.
 *
 * Two processes creating the file at once end up with the same certificate
 * (the one that loses the race loads the winner's); a half-written file is
 * never visible. A file that cannot be read as a certificate is left alone
 * and reported, never silently replaced.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadOrCreateCertificate } from "./certificate.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const first = await loadOrCreateCertificate(`${dir}/cert.pem`);
 * const second = await loadOrCreateCertificate(`${dir}/cert.pem`);
 * assert.deepEqual(second.fingerprint, first.fingerprint);
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @throws {InvalidCertificateError} if the file holds no usable certificate
 * and key; `path` names it. Delete it to get a new certificate (and a new
 * certhash).
 * @throws {RangeError} if `renewWithinDays` is not from 0 to less than
 * `days`.
 * @throws {Deno.errors.PermissionDenied} and other I/O errors as they come.
 */
export async function loadOrCreateCertificate(
  path: string | URL,
  options: LoadOrCreateCertificateOptions = {},
): Promise<GeneratedCertificate> {
  const file = secretPath(path);
  const days = options.days ?? 365;
  const renewWithinDays = options.renewWithinDays ?? 7;
  if (!(renewWithinDays >= 0 && renewWithinDays < days)) {
    throw new RangeError(
      `renewWithinDays must be from 0 to less than days (${days}), not ${renewWithinDays}`,
    );
  }
  const existing = await readIfExists(file);
  if (existing !== undefined) {
    const stored = await importFrom(decodeText(existing, file), file);
    if (stored.expires! - Date.now() > renewWithinDays * DAY) return stored;
    const renewed = await generateCertificate({ days });
    await replaceFile(file, ascii(exportCertificate(renewed)));
    return renewed;
  }
  const created = await generateCertificate({ days });
  if (await writeIfAbsent(file, ascii(exportCertificate(created)))) {
    return created;
  }
  return await importFrom(decodeText(await Deno.readFile(file), file), file);
}

function decodeText(bytes: Uint8Array, path: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (error) {
    throw new InvalidCertificateError(
      `the ${bytes.length} bytes are not PEM text`,
      path,
      { cause: error },
    );
  }
}

async function importFrom(
  input: CertificatePem | string,
  path: string | undefined,
): Promise<GeneratedCertificate> {
  const fail = (message: string, cause?: unknown): never => {
    throw new InvalidCertificateError(
      message,
      path,
      cause === undefined ? undefined : { cause },
    );
  };
  if (
    typeof input !== "string" &&
    (typeof input?.certificate !== "string" ||
      typeof input.privateKey !== "string")
  ) {
    fail("expected PEM text or { certificate, privateKey } PEM strings");
  }
  const certificateText = typeof input === "string" ? input : input.certificate;
  const keyText = typeof input === "string" ? input : input.privateKey;
  const certificate = pemBlock(certificateText, "CERTIFICATE", fail);
  const pkcs8 = pemBlock(keyText, "PRIVATE KEY", fail);
  const { spki, notAfter } = readCertificate(certificate, fail);

  let publicKey: CryptoKey;
  let privateKey: CryptoKey;
  try {
    publicKey = await crypto.subtle.importKey("spki", spki, P256, true, [
      "verify",
    ]);
  } catch (error) {
    return fail("the certificate's key is not an ECDSA P-256 key", error);
  }
  try {
    privateKey = await crypto.subtle.importKey("pkcs8", pkcs8, P256, true, [
      "sign",
    ]);
  } catch (error) {
    return fail("the private key is not an ECDSA P-256 PKCS#8 key", error);
  }
  let pub: JsonWebKey;
  let priv: JsonWebKey;
  try {
    // WebCrypto checks the point only here, when it is used.
    pub = await crypto.subtle.exportKey("jwk", publicKey);
    priv = await crypto.subtle.exportKey("jwk", privateKey);
  } catch (error) {
    return fail("the certificate's key is not a valid P-256 point", error);
  }
  if (pub.x !== priv.x || pub.y !== priv.y) {
    fail("the private key does not belong to the certificate");
  }
  return {
    pem: {
      certificate: pem("CERTIFICATE", certificate),
      privateKey: pem("PRIVATE KEY", pkcs8),
    },
    fingerprint: await fingerprintOf(certificate),
    expires: notAfter,
  };
}

/** Whether two fingerprints are the same algorithm and digest. */
export function sameFingerprint(
  a: CertificateFingerprint,
  b: CertificateFingerprint,
): boolean {
  return a.algorithm === b.algorithm &&
    a.digest.length === b.digest.length &&
    a.digest.every((byte, i) => byte === b.digest[i]);
}

const P256 = { name: "ECDSA", namedCurve: "P-256" } as const;

async function fingerprintOf(
  certificate: Uint8Array<ArrayBuffer>,
): Promise<CertificateFingerprint> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", certificate),
  );
  return { algorithm: "sha-256", digest };
}

/** The bytes of the one `label` block in `text`. */
function pemBlock(
  text: string,
  label: string,
  fail: (message: string, cause?: unknown) => never,
): Uint8Array<ArrayBuffer> {
  const blocks = [
    ...text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----([^-]*)-----END \1-----/g),
  ];
  const found = blocks.filter((block) => block[1] === label);
  if (found.length !== 1) {
    const others = blocks.map((block) => block[1]).join(", ") || "none";
    const hint = label === "PRIVATE KEY" && /EC PRIVATE KEY/.test(others)
      ? " (convert a SEC1 key with `openssl pkcs8 -topk8 -nocrypt`)"
      : "";
    fail(
      `expected one PEM "${label}" block, found ${found.length} (blocks: ${others})${hint}`,
    );
  }
  try {
    const binary = atob(found[0][2].replace(/\s+/g, ""));
    return Uint8Array.from(binary, (c) => c.charCodeAt(0));
  } catch (error) {
    return fail(`the PEM "${label}" block is not base64`, error);
  }
}

/** The key and the end of validity of a DER X.509 certificate. */
function readCertificate(
  bytes: Uint8Array<ArrayBuffer>,
  fail: (message: string, cause?: unknown) => never,
): { spki: Uint8Array<ArrayBuffer>; notAfter: number } {
  const read = (offset: number, tags: number[], what: string): Tlv => {
    const tlv = readTlv(bytes, offset);
    if (tlv === undefined || !tags.includes(tlv.tag)) {
      fail(`the certificate is not X.509 DER (at its ${what})`);
    }
    return tlv!;
  };
  const certificate = read(0, [0x30], "outer sequence");
  if (certificate.end !== bytes.length) {
    fail("the certificate is not X.509 DER (bytes after it)");
  }
  const tbs = read(certificate.start, [0x30], "tbsCertificate");
  let field = read(tbs.start, [0xa0, 0x02], "version");
  if (field.tag === 0xa0) field = read(field.end, [0x02], "serial number");
  const algorithm = read(field.end, [0x30], "signature algorithm");
  const issuer = read(algorithm.end, [0x30], "issuer");
  const validity = read(issuer.end, [0x30], "validity");
  const notBefore = read(validity.start, [0x17, 0x18], "notBefore");
  const notAfter = read(notBefore.end, [0x17, 0x18], "notAfter");
  const subject = read(validity.end, [0x30], "subject");
  const spki = read(subject.end, [0x30], "subjectPublicKeyInfo");
  const expires = readTime(notAfter, bytes);
  if (Number.isNaN(expires)) fail("the certificate's notAfter is not a date");
  return { spki: bytes.slice(spki.offset, spki.end), notAfter: expires };
}

/** One DER element: its tag, where it starts, its content and its end. */
interface Tlv {
  tag: number;
  offset: number;
  start: number;
  end: number;
}

/** The element at `offset`, or `undefined` if it runs past the bytes. */
function readTlv(bytes: Uint8Array, offset: number): Tlv | undefined {
  if (offset + 2 > bytes.length) return undefined;
  const tag = bytes[offset];
  let length = bytes[offset + 1];
  let start = offset + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0 || count > 3 || start + count > bytes.length) {
      return undefined;
    }
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + bytes[start + i];
    start += count;
  }
  const end = start + length;
  return end > bytes.length ? undefined : { tag, offset, start, end };
}

/** A UTCTime or GeneralizedTime (whole seconds, `Z`) in ms since the epoch. */
function readTime(tlv: Tlv, bytes: Uint8Array): number {
  const text = new TextDecoder().decode(bytes.subarray(tlv.start, tlv.end));
  const match = (tlv.tag === 0x17 ? /^(\d{2})/ : /^(\d{4})/).exec(text);
  const rest = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(
    text.slice(match?.[1].length ?? 0),
  );
  if (match === null || rest === null) return NaN;
  let year = Number(match[1]);
  if (tlv.tag === 0x17) year += year < 50 ? 2000 : 1900;
  const [month, day, hour, minute, second] = rest.slice(1).map(Number);
  return Date.UTC(year, month - 1, day, hour, minute, second);
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
