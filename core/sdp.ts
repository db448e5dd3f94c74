/**
 * The SDP WebRTC-Direct needs: the synthetic server answer a dialer applies,
 * the synthetic client offer a listener applies, and reading or replacing the
 * few attributes the flows use (`a=fingerprint`, `a=ice-ufrag`, `a=ice-pwd`).
 * The backends use the same readers, the ICE-credential munging and the
 * candidate filter on their stacks' SDP, so there is one copy of each.
 *
 * Every value is checked before it is written, so nothing that reaches here
 * from a multiaddr or a STUN packet can add a line (CR/LF injection) or
 * produce SDP a stack would misread. Lines end in `\r\n`, as RFC 8866
 * requires; go and js write `\n`, which parsers also accept, but every parser
 * (browsers, libdatachannel, the pure-TypeScript stack, Pion) reads `\r\n`.
 *
 * @module
 */

import type { CertificateFingerprint, IceCredentials } from "./backend.ts";
import {
  fingerprintFromHex,
  formatSdpFingerprint,
  parseSdpFingerprint,
} from "./certhash.ts";
import { InvalidFingerprintError, InvalidSdpError } from "./errors.ts";
import { assertIcePwd, assertIceUfrag } from "./ufrag.ts";

/** The SCTP port both sides announce (`a=sctp-port`), fixed by the spec. */
export const SCTP_PORT = 5000;

/** The largest message either side accepts (`a=max-message-size`). */
export const MAX_MESSAGE_SIZE = 16384;

const EOL = "\r\n";

const IPV4 =
  /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const IPV6_GROUP = /^[0-9A-Fa-f]{1,4}$/;

/** Whether `host` is an IPv6 literal (no zone; an SDP address has none). */
function isIpv6(host: string): boolean {
  if (host.length < 2 || host.length > 45) return false;
  const halves = host.split("::");
  if (halves.length > 2) return false;
  const split = (part: string) => part === "" ? [] : part.split(":");
  const head = split(halves[0]);
  const tail = halves.length === 2 ? split(halves[1]) : [];
  const groups = [...head, ...tail];
  // An embedded IPv4 address may only be the very last 32 bits.
  const dottedAllowedAt = halves.length === 2 && tail.length === 0
    ? -1
    : groups.length - 1;
  let width = 0;
  for (let i = 0; i < groups.length; i++) {
    if (i === dottedAllowedAt && groups[i].includes(".")) {
      if (!IPV4.test(groups[i])) return false;
      width += 2;
    } else if (IPV6_GROUP.test(groups[i])) {
      width += 1;
    } else {
      return false;
    }
  }
  return halves.length === 2 ? width < 8 : width === 8;
}

/** The SDP address type of an IP literal, or a typed error. */
function addressType(host: unknown, what: string): "IP4" | "IP6" {
  if (typeof host === "string") {
    if (IPV4.test(host)) return "IP4";
    if (isIpv6(host)) return "IP6";
  }
  throw new InvalidSdpError(
    `${what} must be an IPv4 or IPv6 literal, got ${
      typeof host === "string" ? JSON.stringify(host.slice(0, 64)) : typeof host
    }`,
  );
}

function checkPort(port: unknown, what: string): number {
  if (
    typeof port !== "number" || !Number.isInteger(port) || port < 1 ||
    port > 65535
  ) {
    throw new InvalidSdpError(
      `${what} must be an integer from 1 to 65535, got ${String(port)}`,
    );
  }
  return port;
}

// RFC 5888: a mid is a token; these characters cover what stacks generate.
const MID = /^[A-Za-z0-9_.+-]{1,32}$/;

function checkMid(mid: unknown): string {
  if (typeof mid !== "string" || !MID.test(mid)) {
    throw new InvalidSdpError(
      "a media id (a=mid) is 1 to 32 characters from [A-Za-z0-9_.+-]",
    );
  }
  return mid;
}

/** What {@linkcode buildServerAnswer} needs. */
export interface ServerAnswerInit {
  /** The listener's IP literal, from the multiaddr (IPv4 or IPv6). */
  host: string;
  /** The listener's UDP port. */
  port: number;
  /** The listener's certificate fingerprint, from the certhash. */
  fingerprint: CertificateFingerprint;
  /**
   * The ICE ufrag, also used as the password: the dialer's v1 ufrag, or
   * `libp2p+webrtc+v2/<client pwd>` in v2. It must satisfy both grammars.
   */
  ufrag: string;
  /**
   * The media id of the data-channel m-line in the dialer's offer, which the
   * answer must repeat. Default `"0"`, what browsers generate.
   */
  mid?: string;
}

/**
 * The answer a WebRTC-Direct dialer applies as the listener's, built from the
 * multiaddr alone (spec step 5): ICE-lite, one host candidate at the
 * listener's address, the ufrag as both ICE ufrag and password, the
 * certhash's fingerprint, `a=setup:passive` (the listener is the DTLS
 * server), SCTP port 5000 and 16384-byte messages.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildServerAnswer } from "./sdp.ts";
 *
 * const sdp = buildServerAnswer({
 *   host: "192.0.2.1",
 *   port: 4001,
 *   fingerprint: { algorithm: "sha-256", digest: new Uint8Array(32) },
 *   ufrag: "libp2p+webrtc+v1/abcdefghijklmnopqrstuvwxyz012345",
 * });
 * assert.ok(sdp.includes("\r\na=ice-lite\r\n"));
 * assert.ok(sdp.includes("\r\na=candidate:1 1 UDP 1 192.0.2.1 4001 typ host\r\n"));
 * assert.throws(() =>
 *   buildServerAnswer({
 *     host: "192.0.2.1",
 *     port: 4001,
 *     fingerprint: { algorithm: "sha-256", digest: new Uint8Array(32) },
 *     ufrag: "libp2p+webrtc+v1/x\r\na=evil",
 *   })
 * );
 * ```
 *
 * @throws {InvalidSdpError} if the host is not an IP literal, the port or
 * mid is out of range.
 * @throws {InvalidIceCredentialError} if the ufrag is not both a valid ICE
 * ufrag and password.
 * @throws {InvalidFingerprintError} if the fingerprint is not sha-256/32.
 */
export function buildServerAnswer(init: ServerAnswerInit): string {
  const type = addressType(init.host, "the listener's address");
  const port = checkPort(init.port, "the listener's port");
  assertIceUfrag(init.ufrag);
  assertIcePwd(init.ufrag);
  const fingerprint = formatSdpFingerprint(init.fingerprint);
  const mid = checkMid(init.mid ?? "0");
  const { host, ufrag } = init;
  return [
    "v=0",
    `o=- 0 0 IN ${type} ${host}`,
    "s=-",
    "t=0 0",
    "a=ice-lite",
    `m=application ${port} UDP/DTLS/SCTP webrtc-datachannel`,
    `c=IN ${type} ${host}`,
    `a=mid:${mid}`,
    "a=ice-options:ice2",
    `a=ice-ufrag:${ufrag}`,
    `a=ice-pwd:${ufrag}`,
    `a=fingerprint:${fingerprint}`,
    "a=setup:passive",
    `a=sctp-port:${SCTP_PORT}`,
    `a=max-message-size:${MAX_MESSAGE_SIZE}`,
    `a=candidate:1 1 UDP 1 ${host} ${port} typ host`,
    "a=end-of-candidates",
    "",
  ].join(EOL);
}

// Any sha-256 value will do: the listener turns fingerprint checks off and
// learns the dialer's certificate from DTLS. This is sha-256 of "".
const PLACEHOLDER_FINGERPRINT = fingerprintFromHex(
  "E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:" +
    "27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55",
);

/** What {@linkcode buildClientOffer} needs. */
export interface ClientOfferInit {
  /** The dialer's IP, the source address of its STUN request. */
  host: string;
  /** The dialer's UDP source port. */
  port: number;
  /** The dialer's ICE ufrag: `clientUfrag` from the STUN USERNAME. */
  ufrag: string;
  /** The dialer's ICE password: `clientPwd` from the STUN USERNAME. */
  pwd: string;
  /**
   * The DTLS role the offer claims. Default `"active"`, as js: it leaves the
   * listener's stack only `passive` to answer, which makes it the DTLS server
   * the spec asks for without a stack-specific switch. go writes `"actpass"`
   * and forces the server role in Pion instead.
   */
  setup?: "active" | "actpass";
  /**
   * The fingerprint written in the offer. Default: a fixed placeholder, since
   * the listener cannot know the dialer's certificate and does not check it.
   */
  fingerprint?: CertificateFingerprint;
  /** The media id of the data-channel m-line. Default `"0"`. */
  mid?: string;
}

/**
 * The offer a WebRTC-Direct listener applies as the dialer's, inferred from
 * the first STUN Binding request (spec-notes 4.4 step 3; v1 and v2 alike,
 * which differ only in where `ufrag` and `pwd` come from; see
 * `parseStunUsername` in `ufrag.ts`).
 *
 * It has no candidate: the listener is ICE-lite and learns the dialer's
 * address from its checks.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildClientOffer } from "./sdp.ts";
 * import { parseStunUsername } from "./ufrag.ts";
 *
 * const ufrag = "libp2p+webrtc+v1/abcdefghijklmnopqrstuvwxyz012345";
 * const username = parseStunUsername(`${ufrag}:${ufrag}`);
 * const sdp = buildClientOffer({
 *   host: "2001:db8::1",
 *   port: 50000,
 *   ufrag: username.clientUfrag,
 *   pwd: username.clientPwd,
 * });
 * assert.ok(sdp.includes("\r\nc=IN IP6 2001:db8::1\r\n"));
 * assert.ok(sdp.includes(`\r\na=ice-pwd:${ufrag}\r\n`));
 * assert.ok(sdp.includes("\r\na=setup:active\r\n"));
 * ```
 *
 * @throws {InvalidSdpError} if the host is not an IP literal, the port or
 * mid is out of range, or `setup` is neither `active` nor `actpass`.
 * @throws {InvalidIceCredentialError} if the ufrag or password is invalid.
 * @throws {InvalidFingerprintError} if a given fingerprint is not sha-256/32.
 */
export function buildClientOffer(init: ClientOfferInit): string {
  const type = addressType(init.host, "the dialer's address");
  const port = checkPort(init.port, "the dialer's port");
  assertIceUfrag(init.ufrag);
  assertIcePwd(init.pwd);
  const setup = init.setup ?? "active";
  if (setup !== "active" && setup !== "actpass") {
    throw new InvalidSdpError(
      `the offer's a=setup is active or actpass, got ${JSON.stringify(setup)}`,
    );
  }
  const fingerprint = formatSdpFingerprint(
    init.fingerprint ?? PLACEHOLDER_FINGERPRINT,
  );
  const mid = checkMid(init.mid ?? "0");
  const { host } = init;
  return [
    "v=0",
    `o=- 0 0 IN ${type} ${host}`,
    "s=-",
    `c=IN ${type} ${host}`,
    "t=0 0",
    `m=application ${port} UDP/DTLS/SCTP webrtc-datachannel`,
    `a=mid:${mid}`,
    "a=ice-options:ice2",
    `a=ice-ufrag:${init.ufrag}`,
    `a=ice-pwd:${init.pwd}`,
    `a=fingerprint:${fingerprint}`,
    `a=setup:${setup}`,
    `a=sctp-port:${SCTP_PORT}`,
    `a=max-message-size:${MAX_MESSAGE_SIZE}`,
    "",
  ].join(EOL);
}

function assertSdp(sdp: unknown): asserts sdp is string {
  if (typeof sdp !== "string") {
    throw new InvalidSdpError(`an SDP is a string, got ${typeof sdp}`);
  }
}

/** The SDP's lines without their terminators; it accepts `\r\n` and `\n`. */
function lines(sdp: unknown): string[] {
  assertSdp(sdp);
  return sdp.split("\n").map((line) =>
    line.endsWith("\r") ? line.slice(0, -1) : line
  );
}

/** The values of every `a=<name>:` line, session and media level, in order. */
function attributeValues(sdp: string, name: string): string[] {
  const prefix = `a=${name}:`;
  return lines(sdp)
    .filter((line) => line.startsWith(prefix))
    .map((line) => line.slice(prefix.length));
}

/**
 * The sha-256 certificate fingerprint an SDP announces, from its first
 * sha-256 `a=fingerprint` line (a stack may list other hashes too).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readFingerprint } from "./sdp.ts";
 *
 * const hex = Array(32).fill("ab").join(":");
 * const sdp = `v=0\r\na=fingerprint:sha-1 00:11\r\na=fingerprint:sha-256 ${hex}\r\n`;
 * assert.equal(readFingerprint(sdp).digest[0], 0xab);
 * assert.throws(() => readFingerprint("v=0\r\n"), { code: "ERR_INVALID_SDP" });
 * ```
 *
 * @throws {InvalidSdpError} if the SDP has no `a=fingerprint` at all.
 * @throws {InvalidFingerprintError} if none is sha-256, or it is malformed.
 */
export function readFingerprint(sdp: string): CertificateFingerprint {
  const values = attributeValues(sdp, "fingerprint");
  if (values.length === 0) {
    throw new InvalidSdpError("the SDP has no a=fingerprint line");
  }
  const sha256 = values.find((value) => /^sha-256[ \t]/i.test(value));
  if (sha256 === undefined) {
    throw new InvalidFingerprintError(
      "the SDP has no sha-256 a=fingerprint; only sha-256 is supported",
    );
  }
  return parseSdpFingerprint(sha256.trimEnd());
}

/**
 * The sha-256 fingerprint of an SDP, or `undefined` where
 * {@linkcode readFingerprint} would throw: for backends reading their own
 * stack's descriptions, where a missing line only means "not known yet".
 */
export function findFingerprint(
  sdp: string,
): CertificateFingerprint | undefined {
  try {
    return readFingerprint(sdp);
  } catch {
    return undefined;
  }
}

/**
 * The value of the first `a=<name>:` line, session or media level, as
 * written (without its line ending), or `undefined` if there is none. Nothing
 * is checked: for reading what a stack wrote, such as the `a=mid` its
 * candidates belong to.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { findAttribute } from "./sdp.ts";
 *
 * const sdp = "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:data\r\n";
 * assert.equal(findAttribute(sdp, "mid"), "data");
 * assert.equal(findAttribute(sdp, "setup"), undefined);
 * ```
 *
 * @throws {InvalidSdpError} if `sdp` is not a string.
 */
export function findAttribute(sdp: string, name: string): string | undefined {
  return attributeValues(sdp, name)[0];
}

function readFirst(sdp: string, name: string): string {
  const value = findAttribute(sdp, name);
  if (value === undefined) {
    throw new InvalidSdpError(`the SDP has no a=${name} line`);
  }
  return value;
}

/**
 * The ICE ufrag of an SDP, from its first `a=ice-ufrag` line, checked against
 * the ICE grammar.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readIceUfrag } from "./sdp.ts";
 *
 * assert.equal(readIceUfrag("v=0\r\na=ice-ufrag:Ab+/\r\n"), "Ab+/");
 * ```
 *
 * @throws {InvalidSdpError} if there is no `a=ice-ufrag` line.
 * @throws {InvalidIceCredentialError} if its value is not a valid ufrag.
 */
export function readIceUfrag(sdp: string): string {
  const ufrag = readFirst(sdp, "ice-ufrag");
  assertIceUfrag(ufrag);
  return ufrag;
}

/**
 * The ICE password of an SDP, from its first `a=ice-pwd` line, checked
 * against the ICE grammar. A v2 dialer reads its own password this way and
 * aborts if it is not 22 to 256 ice-chars.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readIcePwd } from "./sdp.ts";
 *
 * const pwd = "x".repeat(24);
 * assert.equal(readIcePwd(`v=0\na=ice-pwd:${pwd}\n`), pwd);
 * assert.throws(() => readIcePwd("v=0\na=ice-pwd:short\n"), {
 *   code: "ERR_INVALID_ICE_CREDENTIAL",
 * });
 * ```
 *
 * @throws {InvalidSdpError} if there is no `a=ice-pwd` line.
 * @throws {InvalidIceCredentialError} if its value is not a valid password.
 */
export function readIcePwd(sdp: string): string {
  const pwd = readFirst(sdp, "ice-pwd");
  assertIcePwd(pwd);
  return pwd;
}

/**
 * The ICE credentials an SDP announces, from its first `a=ice-ufrag` and
 * `a=ice-pwd` lines as written, or `undefined` unless it has both.
 *
 * Unlike {@linkcode readIceUfrag} and {@linkcode readIcePwd} it neither
 * checks nor throws: it serves a backend telling whether a caller changed
 * its stack's credentials in the SDP text, and the backend checks the values
 * before it applies them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { findIceCredentials } from "./sdp.ts";
 *
 * const sdp = "v=0\r\na=ice-ufrag:R8dn\r\na=ice-pwd:Ow6ODfXpiXV1o+kuLUc3LqQi\r\n";
 * assert.deepEqual(findIceCredentials(sdp), {
 *   ufrag: "R8dn",
 *   pwd: "Ow6ODfXpiXV1o+kuLUc3LqQi",
 * });
 * assert.equal(findIceCredentials("v=0\r\na=ice-ufrag:R8dn\r\n"), undefined);
 * ```
 *
 * @throws {InvalidSdpError} if `sdp` is not a string.
 */
export function findIceCredentials(sdp: string): IceCredentials | undefined {
  const ufrag = findAttribute(sdp, "ice-ufrag");
  const pwd = findAttribute(sdp, "ice-pwd");
  return ufrag === undefined || pwd === undefined ? undefined : { ufrag, pwd };
}

/**
 * Replaces the value of every `a=ice-ufrag` and `a=ice-pwd` line, at session
 * and media level (the v1 dialer's "munging"). Line endings are kept as they
 * were.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readIcePwd, readIceUfrag, replaceIceCredentials } from "./sdp.ts";
 *
 * const offer = "v=0\r\na=ice-ufrag:abcd\r\na=ice-pwd:" + "p".repeat(22) + "\r\n";
 * const ufrag = "libp2p+webrtc+v1/abcdefghijklmnopqrstuvwxyz012345";
 * const munged = replaceIceCredentials(offer, { ufrag, pwd: ufrag });
 * assert.equal(readIceUfrag(munged), ufrag);
 * assert.equal(readIcePwd(munged), ufrag);
 * assert.ok(munged.endsWith("\r\n"));
 * ```
 *
 * @throws {InvalidIceCredentialError} if the ufrag or password is invalid.
 * @throws {InvalidSdpError} if the SDP lacks `a=ice-ufrag` or `a=ice-pwd`, so
 * a failed munge cannot pass silently.
 */
export function replaceIceCredentials(
  sdp: string,
  credentials: IceCredentials,
): string {
  assertIceUfrag(credentials?.ufrag);
  assertIcePwd(credentials?.pwd);
  assertSdp(sdp);
  let ufrags = 0;
  let pwds = 0;
  const out = sdp.split("\n").map((line) => {
    const cr = line.endsWith("\r") ? "\r" : "";
    if (line.startsWith("a=ice-ufrag:")) {
      ufrags++;
      return `a=ice-ufrag:${credentials.ufrag}${cr}`;
    }
    if (line.startsWith("a=ice-pwd:")) {
      pwds++;
      return `a=ice-pwd:${credentials.pwd}${cr}`;
    }
    return line;
  });
  if (ufrags === 0 || pwds === 0) {
    throw new InvalidSdpError(
      `the SDP has no a=${
        ufrags === 0 ? "ice-ufrag" : "ice-pwd"
      } line to replace`,
    );
  }
  return out.join("\n");
}

/**
 * The address field of an ICE candidate attribute value
 * (`candidate:<foundation> <component> <transport> <priority> <address> …`,
 * with or without a leading `a=`), or `undefined` if it has fewer fields.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { candidateAddress } from "./sdp.ts";
 *
 * assert.equal(
 *   candidateAddress("candidate:1 1 UDP 2122260223 127.0.0.1 50000 typ host"),
 *   "127.0.0.1",
 * );
 * assert.equal(candidateAddress(""), undefined);
 * ```
 */
export function candidateAddress(candidate: string): string | undefined {
  return candidate.replace(/^a=/, "").split(/\s+/)[4];
}

/**
 * The SDP with only the `a=candidate` lines `keep` accepts; it is given each
 * one's value (`candidate:…`, without `a=` and the line ending). Every other
 * line stays as written, line endings included.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { candidateAddress, filterCandidates } from "./sdp.ts";
 *
 * const sdp = "a=mid:0\r\n" +
 *   "a=candidate:1 1 UDP 1 127.0.0.1 5000 typ host\r\n" +
 *   "a=candidate:2 1 UDP 1 192.0.2.1 5000 typ host\r\n";
 * assert.equal(
 *   filterCandidates(sdp, (c) => candidateAddress(c) === "127.0.0.1"),
 *   "a=mid:0\r\na=candidate:1 1 UDP 1 127.0.0.1 5000 typ host\r\n",
 * );
 * ```
 *
 * @throws {InvalidSdpError} if `sdp` is not a string.
 */
export function filterCandidates(
  sdp: string,
  keep: (candidate: string) => boolean,
): string {
  assertSdp(sdp);
  return sdp.split(/(?<=\n)/)
    .filter((line) =>
      !line.startsWith("a=candidate:") ||
      keep(line.slice(2).replace(/[\r\n]+$/, ""))
    )
    .join("");
}
