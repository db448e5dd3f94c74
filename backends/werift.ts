/**
 * A {@linkcode PeerConnectionBackend} over [werift](https://github.com/shinyoshiaki/werift-webrtc)
 * 0.25, a WebRTC stack written in TypeScript: no native code, so it runs
 * wherever Deno's Node compatibility does. It is several times slower than
 * libdatachannel (about 10 MB/s between two werift connections in one
 * process, 15 to 20 MB/s against libdatachannel), and its only choice when
 * native code is not an option.
 *
 * What it does: offers and answers with trickled candidates (held until the
 * remote description is applied), ICE credentials chosen by the caller
 * (WebRTC-Direct dialing, `capabilities.directDial`), negotiated and in-band
 * data channels, binary messages up to 16384 bytes
 * (`a=max-message-size:16384`), both DTLS fingerprints, `bindAddress`, a PEM
 * `certificate` (ECDSA or RSA). WebRTC-Direct listening is not offered
 * (`capabilities.directListen` is `false`): werift has no ICE-lite listener
 * that shares one UDP port between connections.
 *
 * Permissions: `--allow-net --allow-env --allow-sys=networkInterfaces`.
 * `env` is for werift's logger, which lists every variable at import. `sys`
 * is for the interface scan: without it werift gathers no candidates and the
 * connection times out silently. With `bindAddress` there is no scan, so
 * `--allow-net --allow-env` do (on loopback even `--allow-net=127.0.0.1`).
 *
 * Network: nothing is contacted unless an ICE server is configured (werift
 * would ask a public Google STUN server; this backend stops it). Remote
 * `.local` candidates are dropped unless {@linkcode WeriftOptions.mdns} is
 * set, so no multicast socket opens behind the caller's back. Without
 * `bindAddress` werift gathers on every interface except loopback; with it,
 * on that one address only.
 *
 * Closing: `close()` returns at once; the channels' `onclose` and the
 * connection's `closed` follow as events. werift keeps DTLS retransmission
 * timers running for 500 ms after each handshake flight (more if one was
 * retransmitted) and no call cancels them, so a peer connection stays
 * counted in `openHandles()` until those have fired, and
 * {@linkcode WeriftBackend.idle} resolves when nothing is left: await it
 * before a test ends, or Deno's op sanitizer reports the timers. A peer that
 * closes is noticed at once (this backend sends a DTLS close_notify, which
 * werift itself does not); a peer that vanishes, only when ICE consent
 * expires after 30 s, after which the connection goes `failed` then
 * `closed`.
 *
 * What this backend mends in werift, for other stacks as much as for libp2p:
 * a fresh certificate per connection (werift shares one per process), data
 * sent just before a channel's `close()` is delivered (werift resets the
 * stream at once and a werift peer drops what is still in flight), empty
 * messages (werift's stall the stream), stream ids (werift reuses one while
 * the peer is still resetting it, which closes the new channel), the SCTP
 * role and stream-id parity against a peer that answers `a=setup:passive`,
 * messages that make werift's receive path throw (an unhandled rejection
 * that ends the process) and packets that make it throw the same way by
 * arriving twice at once (a SHUTDOWN or INIT ACK starts its retransmission
 * timer twice), stream resets around a channel closed as the peer opens it
 * (werift reset the stream before sending its DCEP ACK, and reset it twice
 * when both ends closed at once; Chromium then stalled or closed the next
 * channel on that id), the connection state after the peer aborts (werift stays
 * "connected"), and send queues of many small messages (werift
 * slows down quadratically; at most 8 per channel are inside it).
 *
 * @example Two peer connections on loopback
 * ```ts
 * import { werift } from "./werift.ts";
 *
 * const backend = werift();
 * const a = backend.createPeerConnection({ bindAddress: "127.0.0.1" });
 * const b = backend.createPeerConnection({ bindAddress: "127.0.0.1" });
 * a.onicecandidate = (c) => c && b.addIceCandidate(c);
 * b.onicecandidate = (c) => c && a.addIceCandidate(c);
 *
 * const sender = a.createDataChannel("", { negotiated: true, id: 0 });
 * const receiver = b.createDataChannel("", { negotiated: true, id: 0 });
 * const received = new Promise<string>((resolve) => {
 *   receiver.onmessage = (data) => resolve(new TextDecoder().decode(data));
 * });
 * sender.onopen = () => sender.send(new TextEncoder().encode("hello"));
 *
 * await a.setLocalDescription(await a.createOffer());
 * await b.setRemoteDescription(a.localDescription!);
 * await b.setLocalDescription(await b.createAnswer());
 * await a.setRemoteDescription(b.localDescription!);
 * console.log(await received); // "hello"
 *
 * a.close();
 * b.close();
 * await backend.idle(AbortSignal.timeout(5000));
 * ```
 *
 * @module
 */

import type {
  BackendCapabilities,
  HandleCount,
  PeerConnection,
  PeerConnectionBackend,
  PeerConnectionOptions,
} from "../core/backend.ts";
import { Handles } from "./werift/handles.ts";
import { WeriftPeerConnection } from "./werift/peer_connection.ts";

export { MAX_MESSAGE_SIZE } from "./werift/config.ts";

/** Options for {@linkcode werift}. */
export interface WeriftOptions {
  /**
   * Resolve remote `.local` candidates with multicast DNS. Off by default:
   * werift would open a multicast socket on port 5353 for them, and on a
   * loopback-only host they can never be reached anyway.
   */
  mdns?: boolean;
}

/** The werift backend: a {@linkcode PeerConnectionBackend} that can also say when it has stopped. */
export interface WeriftBackend extends PeerConnectionBackend {
  /**
   * Resolves once {@linkcode PeerConnectionBackend.openHandles} is zero:
   * every peer connection and data channel this backend made is closed and
   * werift has stopped their sockets and timers. Rejects with a
   * `TimeoutError` if `signal` aborts first.
   */
  idle(signal?: AbortSignal): Promise<void>;
}

/**
 * Creates a werift backend. Each backend counts its own handles.
 *
 * @example
 * ```ts
 * import { werift } from "./werift.ts";
 *
 * const backend = werift();
 * console.log(backend.name, backend.capabilities); // werift { directDial: true, directListen: false }
 * ```
 */
export function werift(options: WeriftOptions = {}): WeriftBackend {
  const handles = new Handles();
  const settings = { mdns: options.mdns ?? false };
  const capabilities: BackendCapabilities = {
    directDial: true,
    directListen: false,
  };
  return {
    name: "werift",
    capabilities,
    createPeerConnection: (init?: PeerConnectionOptions): PeerConnection =>
      new WeriftPeerConnection(init ?? {}, settings, handles),
    openHandles: (): HandleCount => handles.count(),
    idle: (signal?: AbortSignal): Promise<void> => handles.idle(signal),
  };
}
