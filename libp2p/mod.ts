/**
 * p2prtc inside js-libp2p 3.x: transports for `/webrtc-direct` and `/webrtc`
 * that a js-libp2p node running in Deno (or anywhere else js-libp2p runs)
 * uses in place of `@libp2p/webrtc`, with any p2prtc backend underneath:
 * libdatachannel, werift or the browser's.
 *
 * The node's upgrader does what it does for every transport: it negotiates
 * each stream's protocol with multistream-select and runs the node's
 * protocols (identify, ping, your own) on them. p2prtc does the rest: ICE,
 * DTLS and Noise (WebRTC-Direct), the offer/answer flow over the relay's
 * `/webrtc-signaling/0.0.1` stream (`/webrtc`), and one data channel per
 * stream with the spec's framing, half-close and reset.
 *
 * @example WebRTC-Direct and `/webrtc` in one node
 * ```ts ignore
 * import { createLibp2p } from "libp2p";
 * import { circuitRelayTransport } from "@libp2p/circuit-relay-v2";
 * import { identify } from "@libp2p/identify";
 * import { noise } from "@libp2p/noise";
 * import { tcp } from "@libp2p/tcp";
 * import { yamux } from "@libp2p/yamux";
 * import { libdatachannel } from "@p2prtc/webrtc/libdatachannel";
 * import { p2prtcWebRTC, p2prtcWebRTCDirect } from "@p2prtc/webrtc/libp2p";
 *
 * const backend = await libdatachannel();
 * const node = await createLibp2p({
 *   addresses: {
 *     listen: [
 *       "/ip4/0.0.0.0/udp/0/webrtc-direct",
 *       `${relayAddr}/p2p-circuit`,
 *       "/webrtc",
 *     ],
 *   },
 *   transports: [
 *     p2prtcWebRTCDirect({ backend }),
 *     p2prtcWebRTC({ backend }),
 *     circuitRelayTransport(),
 *     tcp(),
 *   ],
 *   connectionEncrypters: [noise()],
 *   streamMuxers: [yamux()],
 *   services: { identify: identify() },
 * });
 * ```
 *
 * @module
 */

export {
  p2prtcWebRTCDirect,
  type P2prtcWebRTCDirectComponents,
  type P2prtcWebRTCDirectInit,
} from "./direct.ts";
export {
  p2prtcWebRTC,
  type P2prtcWebRTCComponents,
  type P2prtcWebRTCInit,
} from "./private.ts";
