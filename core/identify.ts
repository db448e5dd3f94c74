/**
 * Answers libp2p identify (`/ipfs/id/1.0.0`): js-libp2p and go-libp2p ask
 * every new connection, and a peer that gets no answer may drop it. The
 * answer is one varint-length-prefixed `Identify` message, then FIN.
 *
 * @module
 */

import { publicKeyToProtobuf } from "@libp2p/crypto/keys";
import { multiaddr } from "@multiformats/multiaddr";
import { Identify } from "../proto/identify.ts";
import type { WebRTCConnection } from "./connection.ts";
import { varintLength, writeVarint } from "./framing.ts";
import { type Identity, libp2pPrivateKey } from "./identity.ts";
import type { NegotiatedStream } from "./multistream.ts";

/** The protocol id of libp2p identify. */
export const IDENTIFY_PROTOCOL = "/ipfs/id/1.0.0";

/** What this node says about itself. */
export interface IdentifyInfo {
  /** This node's identity; its public key is sent. */
  identity: Identity;
  /** The agent name, such as `p2prtc/0.1.0`. */
  agentVersion: string;
  /** The addresses this node listens on. */
  listenAddrs?: string[];
}

/** Builds the identify answer for `connection`, prefixed by its length. */
export function encodeIdentify(
  info: IdentifyInfo,
  connection: WebRTCConnection,
): Uint8Array {
  let observedAddr: Uint8Array<ArrayBuffer> | undefined;
  try {
    observedAddr = multiaddr(connection.remoteAddr).bytes.slice();
  } catch {
    // An address the multiaddr library cannot encode is simply not sent.
  }
  const body = Identify.encode({
    protocolVersion: "ipfs/0.1.0",
    agentVersion: info.agentVersion,
    publicKey: publicKeyToProtobuf(libp2pPrivateKey(info.identity).publicKey)
      .slice(),
    listenAddrs: (info.listenAddrs ?? []).map((a) =>
      multiaddr(a).bytes.slice()
    ),
    observedAddr,
    protocols: connection.protocols,
  });
  const out = new Uint8Array(varintLength(body.length) + body.length);
  out.set(body, writeVarint(out, 0, body.length));
  return out;
}

/** Answers one identify request on `stream` and closes it. */
export async function handleIdentify(
  stream: NegotiatedStream,
  connection: WebRTCConnection,
  info: IdentifyInfo,
): Promise<void> {
  const writer = stream.writable.getWriter();
  try {
    await writer.write(encodeIdentify(info, connection));
    await writer.close();
  } finally {
    writer.releaseLock();
  }
  stream.closeRead();
}
