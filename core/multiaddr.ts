/**
 * WebRTC-Direct multiaddrs:
 * `/ip4|ip6/<ip>/udp/<port>/webrtc-direct/certhash/<mb-mh>[/p2p/<peer id>]`.
 *
 * A dialer parses one into everything it needs to build the listener's SDP
 * answer before sending a packet; a listener builds the one it advertises.
 * Anything else (another transport, a missing certhash, a DNS name, trailing
 * components) is refused with a typed error.
 *
 * @module
 */

import {
  CODE_CERTHASH,
  CODE_DNS,
  CODE_DNS4,
  CODE_DNS6,
  CODE_DNSADDR,
  CODE_IP4,
  CODE_IP6,
  CODE_P2P,
  CODE_UDP,
  CODE_WEBRTC_DIRECT,
  type Component,
  type Multiaddr,
  multiaddr,
} from "@multiformats/multiaddr";
import { base58btc } from "multiformats/bases/base58";
import { CID } from "multiformats/cid";
import * as Digest from "multiformats/hashes/digest";
import type { CertificateFingerprint } from "./backend.ts";
import { decodeCerthash, encodeCerthash } from "./certhash.ts";
import {
  InvalidMultiaddrError,
  UnresolvedMultiaddrError,
  UnsupportedCerthashError,
} from "./errors.ts";

/** A WebRTC-Direct address, parsed. */
export interface WebRTCDirectAddress {
  /** The IP literal, as the multiaddr library prints it (IPv6 compressed). */
  host: string;
  /** The IP family. */
  family: 4 | 6;
  /** The UDP port, 1 to 65535. */
  port: number;
  /**
   * The certificate fingerprints, in address order, at least one. Dial with
   * the first, as go and js do.
   */
  certhashes: CertificateFingerprint[];
  /** The listener's peer id (base58btc), when the address names one. */
  peerId?: string;
}

const DNS_CODES = new Set([CODE_DNS, CODE_DNS4, CODE_DNS6, CODE_DNSADDR]);

/** The libp2p-key multicodec a peer-id CID carries. */
const LIBP2P_KEY = 0x72;
/** An identity multihash inlines the public key; 42 bytes is the cap js and go use. */
const MAX_INLINE_KEY_LENGTH = 42;

/**
 * The canonical (base58btc multihash) form of a peer id written either as
 * base58btc or as a CIDv1 with the libp2p-key codec, or `undefined`.
 *
 * The multiaddr library does not check `/p2p` values given as text, and the
 * dialer later compares the Noise-authenticated peer against this one.
 */
function canonicalPeerId(value: string): string | undefined {
  try {
    let multihash: Uint8Array;
    if (value.startsWith("1") || value.startsWith("Q")) {
      multihash = base58btc.baseDecode(value);
    } else {
      const cid = CID.parse(value);
      if (cid.version !== 1 || cid.code !== LIBP2P_KEY) return undefined;
      multihash = cid.multihash.bytes;
    }
    const { code, size, digest } = Digest.decode(multihash);
    const ok = (code === 0x12 && size === 32) ||
      (code === 0x00 && size <= MAX_INLINE_KEY_LENGTH && isPublicKey(digest));
    return ok ? base58btc.baseEncode(multihash) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether an inlined key is shaped like a libp2p `PublicKey` protobuf:
 * field 1 a key type from 0 to 3, field 2 the rest of the bytes. Without this
 * a cut-off base58 peer id can decode, by chance, as a short identity hash.
 */
function isPublicKey(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x08 && bytes[1] <= 3 &&
    bytes[2] === 0x12 && bytes[3] === bytes.length - 4;
}

function componentsOf(addr: string | Uint8Array | Multiaddr): Component[] {
  try {
    return multiaddr(addr).getComponents();
  } catch (cause) {
    throw new InvalidMultiaddrError(
      `not a multiaddr (${(cause as Error)?.message ?? cause})`,
      { cause },
    );
  }
}

function show(addr: string | Uint8Array | Multiaddr): string {
  try {
    const text = typeof addr === "string" ? addr : multiaddr(addr).toString();
    return JSON.stringify(text.length > 200 ? `${text.slice(0, 200)}…` : text);
  } catch {
    return "the address";
  }
}

/**
 * Parses a WebRTC-Direct multiaddr, decoding its certhashes.
 *
 * The shape must be exactly `/ip4|ip6/<ip>/udp/<port>/webrtc-direct`, one or
 * more `/certhash/<mb-mh>`, then optionally `/p2p/<peer id>` and nothing
 * after it. Certhashes with a hash other than sha-256 are skipped, so a
 * listener may advertise a newer hash beside sha-256; if none is sha-256 the
 * address cannot be dialled.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseWebRTCDirectMultiaddr } from "./multiaddr.ts";
 *
 * const address = parseWebRTCDirectMultiaddr(
 *   "/ip4/192.0.2.1/udp/4001/webrtc-direct" +
 *     "/certhash/uEiAw_J9GnCB0Gd_dCqtfJ6hslzyU5AVI25N1zKLpFZc7mQ" +
 *     "/p2p/12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf",
 * );
 * assert.equal(address.host, "192.0.2.1");
 * assert.equal(address.family, 4);
 * assert.equal(address.port, 4001);
 * assert.equal(address.certhashes[0].digest[0], 0x30);
 * assert.equal(address.peerId, "12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf");
 *
 * assert.throws(
 *   () => parseWebRTCDirectMultiaddr("/dns4/example.com/udp/4001/webrtc-direct"),
 *   { code: "ERR_MULTIADDR_NOT_RESOLVED" },
 * );
 * ```
 *
 * @throws {UnresolvedMultiaddrError} if the host is a DNS name: resolve it
 * and pass the resulting `/ip4` or `/ip6` addresses.
 * @throws {InvalidMultiaddrError} if the address has any other shape, a port
 * of 0, an invalid peer id or a certhash that does not decode.
 * @throws {UnsupportedCerthashError} if no certhash is sha-256.
 */
export function parseWebRTCDirectMultiaddr(
  addr: string | Uint8Array | Multiaddr,
): WebRTCDirectAddress {
  const components = componentsOf(addr);
  const invalid = (why: string, options?: ErrorOptions) =>
    new InvalidMultiaddrError(
      `${show(addr)} is not a WebRTC-Direct address ` +
        `(/ip4|ip6/<ip>/udp/<port>/webrtc-direct/certhash/<certhash>[/p2p/<peer id>]): ${why}`,
      options,
    );

  const [ip, udp, direct] = components;
  if (ip === undefined) throw invalid("it is empty");
  if (DNS_CODES.has(ip.code)) {
    throw new UnresolvedMultiaddrError(
      `${
        show(addr)
      } names its host with /${ip.name}; WebRTC-Direct needs an IP ` +
        "literal for the SDP answer, so resolve the name and dial the resolved /ip4 or /ip6 addresses",
    );
  }
  if (ip.code !== CODE_IP4 && ip.code !== CODE_IP6) {
    throw invalid(`it starts with /${ip.name}, not /ip4 or /ip6`);
  }
  if (udp?.code !== CODE_UDP) throw invalid("/udp/<port> must follow the IP");
  if (direct?.code !== CODE_WEBRTC_DIRECT) {
    throw invalid("/webrtc-direct must follow /udp/<port>");
  }

  const port = Number(udp.value);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw invalid(`UDP port ${JSON.stringify(udp.value)} cannot be dialled`);
  }

  let i = 3;
  const encoded: string[] = [];
  while (components[i]?.code === CODE_CERTHASH) {
    encoded.push(components[i].value ?? "");
    i++;
  }
  if (encoded.length === 0) throw invalid("it has no /certhash");

  let peerId: string | undefined;
  if (components[i]?.code === CODE_P2P) {
    peerId = canonicalPeerId(components[i].value ?? "");
    if (peerId === undefined) {
      throw invalid(`${JSON.stringify(components[i].value)} is not a peer id`);
    }
    i++;
  }
  if (i < components.length) {
    throw invalid(`/${components[i].name} cannot follow`);
  }

  const certhashes: CertificateFingerprint[] = [];
  let unsupported: UnsupportedCerthashError | undefined;
  for (const text of encoded) {
    try {
      certhashes.push(decodeCerthash(text));
    } catch (error) {
      if (error instanceof UnsupportedCerthashError) {
        unsupported ??= error;
        continue;
      }
      throw invalid(`certhash ${JSON.stringify(text)} does not decode`, {
        cause: error,
      });
    }
  }
  if (certhashes.length === 0) throw unsupported!;

  return {
    host: ip.value ?? "",
    family: ip.code === CODE_IP4 ? 4 : 6,
    port,
    certhashes,
    ...(peerId === undefined ? {} : { peerId }),
  };
}

/** What {@linkcode webRTCDirectMultiaddr} needs. */
export interface WebRTCDirectMultiaddrInit {
  /** The IP literal to advertise: IPv4 or IPv6, not `0.0.0.0`/`::`. */
  host: string;
  /** The UDP port the listener is bound to. */
  port: number;
  /** The listener's certificate fingerprint. */
  fingerprint: CertificateFingerprint;
  /** The listener's peer id, appended as `/p2p/<peer id>` when given. */
  peerId?: string;
}

/**
 * The address a WebRTC-Direct listener advertises:
 * `/ip4|ip6/<host>/udp/<port>/webrtc-direct/certhash/<u...>[/p2p/<peer id>]`,
 * the certhash in base64url as the spec requires every dialer to accept.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fingerprintFromHex } from "./certhash.ts";
 * import { webRTCDirectMultiaddr } from "./multiaddr.ts";
 *
 * const address = webRTCDirectMultiaddr({
 *   host: "192.0.2.1",
 *   port: 4001,
 *   fingerprint: fingerprintFromHex(
 *     "30:FC:9F:46:9C:20:74:19:DF:DD:0A:AB:5F:27:A8:6C:" +
 *       "97:3C:94:E4:05:48:DB:93:75:CC:A2:E9:15:97:3B:99",
 *   ),
 * });
 * assert.equal(
 *   address.toString(),
 *   "/ip4/192.0.2.1/udp/4001/webrtc-direct/certhash/uEiAw_J9GnCB0Gd_dCqtfJ6hslzyU5AVI25N1zKLpFZc7mQ",
 * );
 * ```
 *
 * @throws {InvalidMultiaddrError} if the host is not a dialable IP literal,
 * the port is out of range or the peer id is invalid.
 * @throws {InvalidFingerprintError} if the fingerprint is not sha-256/32.
 */
export function webRTCDirectMultiaddr(
  init: WebRTCDirectMultiaddrInit,
): Multiaddr {
  const { host, port, peerId } = init;
  const certhash = encodeCerthash(init.fingerprint);
  if (typeof host !== "string" || host === "" || host.includes("/")) {
    throw new InvalidMultiaddrError(
      `${JSON.stringify(host)} is not an IP literal`,
    );
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new InvalidMultiaddrError(`UDP port ${port} cannot be advertised`);
  }
  if (
    peerId !== undefined && (typeof peerId !== "string" || peerId.includes("/"))
  ) {
    throw new InvalidMultiaddrError(
      `${JSON.stringify(peerId)} is not a peer id`,
    );
  }
  const family = host.includes(":") ? "ip6" : "ip4";
  const text =
    `/${family}/${host}/udp/${port}/webrtc-direct/certhash/${certhash}` +
    (peerId === undefined ? "" : `/p2p/${peerId}`);
  // Parsing what was built checks the IP and peer id the same way a dialer will.
  const parsed = parseWebRTCDirectMultiaddr(text);
  if (
    (parsed.family === 4 && parsed.host === "0.0.0.0") ||
    (parsed.family === 6 && parsed.host === "::")
  ) {
    throw new InvalidMultiaddrError(
      `${host} is the unspecified address; advertise the addresses of the interfaces`,
    );
  }
  return multiaddr(
    `/${family}/${parsed.host}/udp/${port}/webrtc-direct/certhash/${certhash}` +
      (parsed.peerId === undefined ? "" : `/p2p/${parsed.peerId}`),
  );
}
