/**
 * A node's libp2p identity: its private key and the peer ID derived from it.
 *
 * Keys and peer IDs come from the ecosystem's own packages
 * (`@libp2p/crypto`, `@libp2p/peer-id`), so an {@linkcode Identity} holds
 * the same `PrivateKey` and `PeerId` objects a js-libp2p node uses and can be
 * handed to one as is. Those two types are re-exported here, so callers need
 * no import from `@libp2p/interface` to name them.
 *
 * A key is stored as the libp2p `PrivateKey` protobuf, the format go-libp2p
 * and js-libp2p write too, so a listener that reloads its key keeps its peer
 * ID across restarts.
 *
 * @example A fresh identity and its round trip through bytes
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   exportIdentity,
 *   generateIdentity,
 *   importIdentity,
 * } from "./identity.ts";
 *
 * const identity = await generateIdentity();
 * assert.match(identity.peerId.toString(), /^12D3KooW/);
 * const again = importIdentity(exportIdentity(identity));
 * assert.ok(again.peerId.equals(identity.peerId));
 * ```
 *
 * @module
 */

import {
  generateKeyPair,
  privateKeyFromProtobuf,
  privateKeyToProtobuf,
} from "@libp2p/crypto/keys";
import type { PrivateKey as Libp2pPrivateKey } from "@libp2p/interface";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { InvalidPrivateKeyError } from "./errors.ts";
import { readIfExists, secretPath, writeIfAbsent } from "./secret_file.ts";

/**
 * A libp2p peer ID: the `PeerId` of `@libp2p/interface`, narrowed to what
 * p2prtc's API needs, so its docs do not pull in the whole key hierarchy.
 * Every value p2prtc hands out is a full `PeerId`; cast to it for more.
 */
export interface PeerId {
  /** The key type, such as `"Ed25519"`. */
  readonly type: string;
  /** The base58btc text form, `12D3Koo…` for Ed25519. */
  toString(): string;
  /** Whether `other` is the same peer. */
  equals(other?: PeerId | Uint8Array | string): boolean;
}

/**
 * A libp2p private key: the `PrivateKey` of `@libp2p/interface`, narrowed
 * like {@linkcode PeerId}. p2prtc only accepts real libp2p keys (from
 * `@libp2p/crypto` or a js-libp2p node) where this type appears.
 */
export interface PrivateKey {
  /** The key type, such as `"Ed25519"`. */
  readonly type: string;
  /** The raw key bytes. */
  readonly raw: Uint8Array;
}

/** The full libp2p key behind an {@linkcode Identity}. */
export function libp2pPrivateKey(identity: Identity): Libp2pPrivateKey {
  return identity.privateKey as Libp2pPrivateKey;
}

/** A libp2p private key and the peer ID it proves. */
export interface Identity {
  /** The key that signs the Noise handshake payload. */
  readonly privateKey: PrivateKey;
  /** The peer ID derived from the key's public half. */
  readonly peerId: PeerId;
}

/** Generates a new Ed25519 identity, the libp2p default key type. */
export async function generateIdentity(): Promise<Identity> {
  return identityFromPrivateKey(await generateKeyPair("Ed25519"));
}

/**
 * The identity of an existing libp2p private key, such as one a js-libp2p
 * node already uses.
 *
 * @throws {InvalidPrivateKeyError} if no peer ID can be derived from the key.
 */
export function identityFromPrivateKey(privateKey: PrivateKey): Identity {
  try {
    const key = privateKey as Libp2pPrivateKey;
    return { privateKey: key, peerId: peerIdFromPrivateKey(key) };
  } catch (error) {
    throw new InvalidPrivateKeyError(
      `no peer ID can be derived from a ${privateKey.type} key`,
      undefined,
      { cause: error },
    );
  }
}

/**
 * The identity's private key as libp2p `PrivateKey` protobuf bytes. They are
 * secret: whoever holds them can act as this peer.
 */
export function exportIdentity(identity: Identity): Uint8Array {
  return privateKeyToProtobuf(libp2pPrivateKey(identity));
}

/**
 * Reads an identity from libp2p `PrivateKey` protobuf bytes, as written by
 * {@linkcode exportIdentity}, go-libp2p or js-libp2p.
 *
 * @throws {InvalidPrivateKeyError} if the bytes are not such a key.
 */
export function importIdentity(bytes: Uint8Array): Identity {
  return importFrom(bytes, undefined);
}

/**
 * Loads the identity stored at `path`, or, when there is no file there,
 * generates an Ed25519 one and stores it with mode 0o600 (owner only).
 * Needs read and write permission for `path`.
 *
 * Two processes starting at once do not overwrite each other: the key is
 * written to a temporary file beside `path` and linked into place only if
 * `path` is still absent, and the one that loses the race loads the winner's
 * key. A half-written key file is never visible.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadOrCreateIdentity } from "./identity.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const first = await loadOrCreateIdentity(`${dir}/peer.key`);
 * const second = await loadOrCreateIdentity(`${dir}/peer.key`);
 * assert.equal(second.peerId.toString(), first.peerId.toString());
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @throws {InvalidPrivateKeyError} if the file holds no valid key. It is left
 * alone, since replacing it would change the node's peer ID.
 * @throws {Deno.errors.PermissionDenied} and other I/O errors as they come.
 */
export async function loadOrCreateIdentity(
  path: string | URL,
): Promise<Identity> {
  const file = secretPath(path);
  const existing = await readIfExists(file);
  if (existing !== undefined) return importFrom(existing, file);
  const identity = await generateIdentity();
  if (await writeIfAbsent(file, exportIdentity(identity))) return identity;
  return importFrom(await Deno.readFile(file), file);
}

function importFrom(bytes: Uint8Array, path: string | undefined): Identity {
  let privateKey: PrivateKey;
  try {
    privateKey = privateKeyFromProtobuf(bytes);
  } catch (error) {
    const where = path === undefined ? "" : ` in ${path}`;
    throw new InvalidPrivateKeyError(
      `the ${bytes.length} bytes${where} are not a libp2p private key protobuf`,
      path,
      { cause: error },
    );
  }
  return identityFromPrivateKey(privateKey);
}
