/**
 * What the WebSocket rendezvous client (`websocket.ts`) and server
 * (`rendezvous_server.ts`) share: the version, the signed authentication
 * payload, the limits' defaults, the close codes and the shape checks. The
 * wire protocol itself is documented in `websocket.ts`.
 *
 * No Deno API here: the client runs in browsers too.
 *
 * @module
 */

import { peerIdFromString } from "@libp2p/peer-id";
import { base64url } from "multiformats/bases/base64";

/** The protocol version the server announces in its challenge. */
export const RENDEZVOUS_PROTOCOL_VERSION = 1;

/**
 * The domain-separation context at the head of every signed authentication
 * payload, so a signature made here means nothing to any other protocol a
 * libp2p key signs for (and the other way round).
 */
export const RENDEZVOUS_AUTH_CONTEXT = "p2prtc-rendezvous-auth/1";

/**
 * The default limit on one WebSocket frame, in bytes of UTF-8: 63 KiB, so
 * that a frame with the server's `from` stamp added still fits in one Deno KV
 * value (64 KiB) when instances relay through KV. An SDP of a few KiB fits
 * many times over.
 */
export const DEFAULT_MAX_FRAME_SIZE = 63 * 1024;

/** The longest peer ID accepted in a frame, in characters. */
export const MAX_PEER_ID_LENGTH = 128;

/** The longest abort reason relayed, in characters. */
export const MAX_REASON_LENGTH = 128;

/** An attempt id: 1 to 64 characters of base64url. */
export const ATTEMPT_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** The operations on an attempt a `send` frame carries. */
export const ATTEMPT_OPS: ReadonlySet<string> = new Set([
  "open",
  "data",
  "end",
  "abort",
]);

/**
 * The WebSocket close codes the server uses (4000–4999 is the range RFC 6455
 * leaves to applications), and the standard ones it also uses.
 */
export const RendezvousCloseCode = {
  /** The server is shutting down (standard). */
  GOING_AWAY: 1001,
  /** A frame was over the size limit (standard). */
  TOO_LARGE: 1009,
  /** The signature did not verify, or did not prove the peer ID claimed. */
  AUTH_FAILED: 4001,
  /** No valid `auth` frame arrived in time. */
  AUTH_TIMEOUT: 4002,
  /** No frame arrived for the idle timeout. */
  IDLE_TIMEOUT: 4003,
  /** The same peer ID registered again, on another connection. */
  REPLACED: 4004,
  /** More frames than the rate limit allows. */
  RATE_LIMITED: 4005,
  /** A frame that is not part of the protocol. */
  PROTOCOL_VIOLATION: 4006,
  /** The connection read too slowly: too much was waiting to be sent to it. */
  SLOW_READER: 4007,
} as const;

/**
 * The bytes a peer signs to authenticate: the UTF-8 of
 * `p2prtc-rendezvous-auth/1\n<host>\n<nonce>\n<peer id>`, where `host` is the
 * `host` (with port, if any) of the URL the client connected to, `nonce` the
 * server's challenge as sent (base64url) and `peer id` the text form claimed.
 * None of the fields can hold a newline (the server checks), so the payload
 * reads one way only.
 */
export function authPayload(
  host: string,
  nonce: string,
  peer: string,
): Uint8Array {
  return new TextEncoder().encode(
    `${RENDEZVOUS_AUTH_CONTEXT}\n${host}\n${nonce}\n${peer}`,
  );
}

/** Base64url without padding or multibase prefix. */
export function toBase64url(bytes: Uint8Array): string {
  return base64url.baseEncode(bytes);
}

/**
 * Reads base64url without padding or multibase prefix.
 *
 * @throws {SyntaxError} or another error from `multiformats` if `text` is not
 * base64url.
 */
export function fromBase64url(text: string): Uint8Array {
  return base64url.baseDecode(text);
}

/** The length of `text` in UTF-8, in bytes, without encoding it. */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}

/**
 * Whether `text` is over `limit` bytes of UTF-8. Counts only when the answer
 * is not clear from the length alone.
 */
export function overLimit(text: string, limit: number): boolean {
  // A UTF-16 unit is one to three bytes; a surrogate pair is four.
  if (text.length > limit) return true;
  if (text.length * 3 <= limit) return false;
  return utf8Length(text) > limit;
}

/** Whether `value` is a plain JSON object. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Parses a text frame as a JSON object, or returns `undefined`. */
export function parseFrame(text: string): Record<string, unknown> | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  return isRecord(value) ? value : undefined;
}

/**
 * The canonical text of a peer ID (base58btc), or `undefined` if `text` is
 * not the text of a key-based peer ID.
 */
export function canonicalPeerId(text: string): string | undefined {
  if (text.length === 0 || text.length > MAX_PEER_ID_LENGTH) return undefined;
  try {
    const peerId = peerIdFromString(text);
    return peerId.type === "url" ? undefined : peerId.toString();
  } catch {
    return undefined;
  }
}

/**
 * `value`, or `fallback` when it is not given.
 *
 * @throws {TypeError} if `value` is given and not a positive number.
 */
export function positive(
  value: number | undefined,
  fallback: number,
  name: string,
): number {
  if (value === undefined) return fallback;
  if (!(Number.isFinite(value) && value > 0)) {
    throw new TypeError(`invalid ${name} ${value}: it must be positive`);
  }
  return value;
}
