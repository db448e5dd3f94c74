/**
 * ICE credentials for WebRTC-Direct: the dialer's random ufrag, the RFC 8839
 * grammar every ufrag and password must satisfy, and the listener's reading of
 * the STUN USERNAME that opens a connection (v1 and the v2 draft).
 *
 * These strings end up in SDP and in native ICE stacks, and a listener reads
 * them from datagrams anyone can send, so every one is checked against the
 * grammar before it is used.
 *
 * @module
 */

import type { IceCredentials } from "./backend.ts";
import {
  InvalidIceCredentialError,
  InvalidStunUsernameError,
} from "./errors.ts";

/** The prefix of a v1 ufrag: the dialer munges it into its offer. */
export const UFRAG_PREFIX_V1 = "libp2p+webrtc+v1/";

/**
 * The prefix of a v2 ufrag (draft, specs PR #715): the dialer's answer
 * credentials are this prefix followed by its own ICE password.
 */
export const UFRAG_PREFIX_V2 = "libp2p+webrtc+v2/";

/** The number of random characters in a generated v1 ufrag, as go and js. */
export const UFRAG_RANDOM_LENGTH = 32;

// RFC 8839: ice-char = ALPHA / DIGIT / "+" / "/"; `$` without the m flag
// matches only at the very end, so a trailing CR or LF cannot slip through.
const ICE_UFRAG = /^[A-Za-z0-9+/]{4,256}$/;
const ICE_PWD = /^[A-Za-z0-9+/]{22,256}$/;
const ALPHANUMERIC =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/**
 * Whether `value` is a valid ICE ufrag: 4 to 256 characters from
 * `[A-Za-z0-9+/]`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isIceUfrag } from "./ufrag.ts";
 *
 * assert.ok(isIceUfrag("abcd"));
 * assert.ok(!isIceUfrag("abc"));
 * assert.ok(!isIceUfrag("abcd\r\na=evil"));
 * ```
 */
export function isIceUfrag(value: unknown): value is string {
  return typeof value === "string" && ICE_UFRAG.test(value);
}

/**
 * Whether `value` is a valid ICE password: 22 to 256 characters from
 * `[A-Za-z0-9+/]`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isIcePwd } from "./ufrag.ts";
 *
 * assert.ok(isIcePwd("a".repeat(22)));
 * assert.ok(!isIcePwd("a".repeat(21)));
 * ```
 */
export function isIcePwd(value: unknown): value is string {
  return typeof value === "string" && ICE_PWD.test(value);
}

/**
 * Throws unless `value` is a valid ICE ufrag (see {@linkcode isIceUfrag}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { assertIceUfrag } from "./ufrag.ts";
 *
 * assertIceUfrag("libp2p+webrtc+v1/abcd");
 * assert.throws(() => assertIceUfrag("a b c d"), { code: "ERR_INVALID_ICE_CREDENTIAL" });
 * ```
 *
 * @throws {InvalidIceCredentialError} with `credential: "ufrag"`.
 */
export function assertIceUfrag(value: unknown): asserts value is string {
  if (!isIceUfrag(value)) {
    throw new InvalidIceCredentialError(
      "ufrag",
      `an ICE ufrag is 4 to 256 characters from [A-Za-z0-9+/], got ${
        describe(value)
      }`,
    );
  }
}

/**
 * Throws unless `value` is a valid ICE password (see {@linkcode isIcePwd}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { assertIcePwd } from "./ufrag.ts";
 *
 * assertIcePwd("libp2p+webrtc+v1/abcde");
 * assert.throws(() => assertIcePwd("short"), { credential: "pwd" });
 * ```
 *
 * @throws {InvalidIceCredentialError} with `credential: "pwd"`.
 */
export function assertIcePwd(value: unknown): asserts value is string {
  if (!isIcePwd(value)) {
    throw new InvalidIceCredentialError(
      "pwd",
      `an ICE password is 22 to 256 characters from [A-Za-z0-9+/], got ${
        describe(value)
      }`,
    );
  }
}

/**
 * Throws unless both ICE credentials are valid (RFC 8839), so a stack that
 * would refuse them, or abort on them, never sees them.
 *
 * @throws {InvalidIceCredentialError} naming the credential that is wrong.
 */
export function assertIceCredentials(credentials: IceCredentials): void {
  assertIceUfrag(credentials.ufrag);
  assertIcePwd(credentials.pwd);
}

/**
 * `length` characters from `[A-Za-z0-9]`, uniformly from a CSPRNG.
 *
 * Bytes of 248 and above are drawn again: 248 is the largest multiple of 62
 * that fits in a byte, so `byte % 62` then favours no character.
 */
function randomAlphanumeric(length: number): string {
  const limit = 256 - (256 % ALPHANUMERIC.length);
  const buffer = new Uint8Array(length + 16);
  let out = "";
  while (out.length < length) {
    crypto.getRandomValues(buffer);
    for (let i = 0; i < buffer.length && out.length < length; i++) {
      if (buffer[i] < limit) {
        out += ALPHANUMERIC[buffer[i] % ALPHANUMERIC.length];
      }
    }
  }
  return out;
}

/**
 * A fresh v1 ufrag for a WebRTC-Direct dial: `libp2p+webrtc+v1/` and
 * `length` random characters from `[A-Za-z0-9]` (32 by default, as go and js).
 *
 * In v1 the same string is the dialer's ICE ufrag and password and the
 * server's, so it must satisfy the password grammar as well: `length` is
 * 5 to 239, making the whole 22 to 256 characters.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateUfrag, isIcePwd } from "./ufrag.ts";
 *
 * const ufrag = generateUfrag();
 * assert.match(ufrag, /^libp2p\+webrtc\+v1\/[A-Za-z0-9]{32}$/);
 * assert.ok(isIcePwd(ufrag));
 * ```
 *
 * @throws {RangeError} if `length` is not an integer from 5 to 239.
 */
export function generateUfrag(length: number = UFRAG_RANDOM_LENGTH): string {
  const min = 22 - UFRAG_PREFIX_V1.length;
  const max = 256 - UFRAG_PREFIX_V1.length;
  if (!Number.isInteger(length) || length < min || length > max) {
    throw new RangeError(
      `a v1 ufrag has ${min} to ${max} random characters, not ${length}`,
    );
  }
  return UFRAG_PREFIX_V1 + randomAlphanumeric(length);
}

/**
 * The ufrag and password a v2 dialer puts in the synthetic server answer:
 * `libp2p+webrtc+v2/` followed by the dialer's own ICE password, which it
 * reads back from its local description. The listener recovers that password
 * from the STUN USERNAME, so the dialer never has to munge its offer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { serverUfragV2 } from "./ufrag.ts";
 *
 * const pwd = "abcdefghijklmnopqrstuv"; // 22 characters
 * assert.equal(serverUfragV2(pwd), "libp2p+webrtc+v2/" + pwd);
 * assert.throws(() => serverUfragV2("too short"));
 * ```
 *
 * @throws {InvalidIceCredentialError} if `clientPwd` is not a valid ICE
 * password or the result would be longer than 256 characters.
 */
export function serverUfragV2(clientPwd: string): string {
  assertIcePwd(clientPwd);
  const ufrag = UFRAG_PREFIX_V2 + clientPwd;
  if (ufrag.length > 256) {
    throw new InvalidIceCredentialError(
      "pwd",
      `a v2 server ufrag is at most 256 characters; an ICE password of ${clientPwd.length} makes it ${ufrag.length}`,
    );
  }
  return ufrag;
}

/** A STUN USERNAME that can start a WebRTC-Direct connection, read. */
export interface StunUsername {
  /** The WebRTC-Direct version, from the server ufrag's prefix. */
  version: 1 | 2;
  /**
   * The listener's ufrag, the half before the first `:`. The listener's ICE
   * ufrag and password are both this value.
   */
  serverUfrag: string;
  /** The dialer's ICE ufrag, the half after the first `:`. */
  clientUfrag: string;
  /**
   * The dialer's ICE password: the server ufrag itself in v1, the server
   * ufrag without its `libp2p+webrtc+v2/` prefix in v2.
   */
  clientPwd: string;
}

/** At most a 256-character ufrag, a colon and another 256 (RFC 8489: 513). */
const MAX_USERNAME_LENGTH = 513;

/**
 * Reads the USERNAME of a STUN Binding request, `server_ufrag:client_ufrag`,
 * as a WebRTC-Direct listener must before it allocates anything.
 *
 * Both halves must be valid ICE ufrags. The server ufrag's prefix picks the
 * version: `libp2p+webrtc+v1/` (and the whole server ufrag must also be a
 * valid password, since v1 uses it as one) or `libp2p+webrtc+v2/` (and the
 * rest must be a valid password). Any other prefix is refused, as go does.
 *
 * In v1 the dialer's ufrag normally equals the server ufrag; the value seen on
 * the wire is returned as is, since that is what the dialer's checks carry.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseStunUsername } from "./ufrag.ts";
 *
 * const ufrag = "libp2p+webrtc+v1/abcdefghijklmnopqrstuvwxyz012345";
 * assert.deepEqual(parseStunUsername(`${ufrag}:${ufrag}`), {
 *   version: 1,
 *   serverUfrag: ufrag,
 *   clientUfrag: ufrag,
 *   clientPwd: ufrag,
 * });
 *
 * const pwd = "Z".repeat(24);
 * const v2 = parseStunUsername(`libp2p+webrtc+v2/${pwd}:abcd`);
 * assert.equal(v2.version, 2);
 * assert.equal(v2.clientPwd, pwd);
 *
 * assert.throws(() => parseStunUsername("someone+else/abcd:abcd"), {
 *   reason: "version",
 * });
 * ```
 *
 * @throws {InvalidStunUsernameError} whatever is wrong; `reason` says what.
 */
export function parseStunUsername(username: string): StunUsername {
  if (typeof username !== "string") {
    throw new InvalidStunUsernameError(
      "format",
      `a STUN USERNAME is a string, got ${describe(username)}`,
    );
  }
  if (username.length > MAX_USERNAME_LENGTH) {
    throw new InvalidStunUsernameError(
      "format",
      `a STUN USERNAME of ${username.length} characters is longer than ${MAX_USERNAME_LENGTH}`,
    );
  }
  const colon = username.indexOf(":");
  if (colon < 0) {
    throw new InvalidStunUsernameError(
      "format",
      "a STUN USERNAME is server_ufrag:client_ufrag, and this has no colon",
    );
  }
  const serverUfrag = username.slice(0, colon);
  const clientUfrag = username.slice(colon + 1);
  if (!isIceUfrag(serverUfrag)) {
    throw new InvalidStunUsernameError(
      "server-ufrag",
      `the server ufrag ${describe(serverUfrag)} is not 4 to 256 ice-chars`,
    );
  }
  if (!isIceUfrag(clientUfrag)) {
    throw new InvalidStunUsernameError(
      "client-ufrag",
      `the client ufrag ${describe(clientUfrag)} is not 4 to 256 ice-chars`,
    );
  }

  if (serverUfrag.startsWith(UFRAG_PREFIX_V1)) {
    if (!isIcePwd(serverUfrag)) {
      throw new InvalidStunUsernameError(
        "client-pwd",
        "a v1 ufrag doubles as the ICE password, so it needs at least 22 characters",
      );
    }
    return { version: 1, serverUfrag, clientUfrag, clientPwd: serverUfrag };
  }
  if (serverUfrag.startsWith(UFRAG_PREFIX_V2)) {
    const clientPwd = serverUfrag.slice(UFRAG_PREFIX_V2.length);
    if (!isIcePwd(clientPwd)) {
      throw new InvalidStunUsernameError(
        "client-pwd",
        "a v2 server ufrag carries the client's ICE password, which is 22 to 256 ice-chars",
      );
    }
    return { version: 2, serverUfrag, clientUfrag, clientPwd };
  }
  throw new InvalidStunUsernameError(
    "version",
    `the server ufrag ${
      describe(serverUfrag)
    } has neither the ${UFRAG_PREFIX_V1} nor the ${UFRAG_PREFIX_V2} prefix`,
  );
}

/**
 * A short, printable description of an untrusted value for an error message:
 * quoted and escaped, cut at 40 characters, so CR/LF and long junk from the
 * network cannot reach logs raw.
 */
function describe(value: unknown): string {
  if (typeof value !== "string") return typeof value;
  const head = value.length > 40 ? `${value.slice(0, 40)}…` : value;
  return `${JSON.stringify(head)} (${value.length} characters)`;
}
