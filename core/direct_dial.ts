/**
 * WebRTC-Direct dialing (libp2p/specs webrtc/webrtc-direct.md): reach a
 * listener from its multiaddr alone, with no signalling.
 *
 * Two ways to tell the listener our ICE password exist. v1, what every
 * deployed listener speaks: the dialer sets its own ICE ufrag and password
 * to one random `libp2p+webrtc+v1/…` string (SDP munging). v2 (draft, specs
 * PR #715): the dialer keeps the credentials its stack generated and puts
 * `libp2p+webrtc+v2/<its password>` in the answer it builds, which the
 * listener reads back from the STUN USERNAME; no munging, so stacks that
 * refuse it (browsers with `WebRTC-NoSdpMangleUfrag`) can dial too. Our
 * listener accepts both on one port; js-libp2p's speaks v1 only.
 *
 * The listener's answer is built locally from the address; the stack checks
 * the listener's DTLS certificate against the certhash; then Noise XX runs on
 * channel 0 with the dialer as responder, binding both fingerprints in the
 * prologue and proving the listener's peer ID.
 *
 * @module
 */

import { peerIdFromString } from "@libp2p/peer-id";
import type { PeerConnection, PeerConnectionBackend } from "./backend.ts";
import { ConnectionFailedError, NotSupportedError } from "./errors.ts";
import {
  ConnectionClosedError,
  type StreamHandler,
  WebRTCConnection,
} from "./connection.ts";
import { type Identity, libp2pPrivateKey } from "./identity.ts";
import { parseWebRTCDirectMultiaddr } from "./multiaddr.ts";
import { noiseHandshake, noiseRoleOf } from "./noise.ts";
import { noisePrologue } from "./noise_prologue.ts";
import { sameFingerprint } from "./certificate.ts";
import { buildServerAnswer, readIcePwd } from "./sdp.ts";
import { type StreamOptions, WebRTCStream } from "./stream.ts";
import { generateUfrag, serverUfragV2 } from "./ufrag.ts";

/** Options for {@linkcode dialDirect}. */
export interface DirectDialOptions {
  /** The WebRTC stack to dial with. */
  backend: PeerConnectionBackend;
  /** This node's identity, proven to the listener in the Noise handshake. */
  identity: Identity;
  /** Aborts the dial. */
  signal?: AbortSignal;
  /** The time limit of the whole dial, in ms. Default 20 000. */
  timeout?: number;
  /** The local address ICE gathers on, for example `"127.0.0.1"`. */
  bindAddress?: string;
  /** Options for the connection's streams. */
  streamOptions?: StreamOptions;
  /** Protocol handlers the connection starts with. */
  handlers?: ReadonlyMap<string, StreamHandler>;
  /**
   * The WebRTC-Direct ufrag scheme: `1` (default: every listener deployed
   * today, js-libp2p's included) or `2` (the draft without SDP munging,
   * which go-libp2p's master and p2prtc's listener accept; it works with a
   * backend whose `capabilities.directDial` is `false`).
   */
  ufragVersion?: 1 | 2;
}

/**
 * Dials a WebRTC-Direct multiaddr
 * (`/ip4/…/udp/…/webrtc-direct/certhash/…[/p2p/…]`) and returns the
 * authenticated connection.
 *
 * The address is checked before any packet is sent. A listener whose DTLS
 * certificate does not match the certhash fails the dial in DTLS, and one
 * whose peer ID differs from `/p2p/` fails it in Noise, each with a typed
 * error.
 *
 * @throws {import("./errors.ts").InvalidMultiaddrError} for an address that
 * is not WebRTC-Direct.
 * @throws {import("./errors.ts").UnsupportedCerthashError} for a certhash
 * that is not sha-256.
 * @throws {ConnectionFailedError} when ICE or DTLS fails (a wrong certhash).
 * @throws {import("./errors.ts").PeerIdMismatchError} when the listener is
 * not the peer in `/p2p/`.
 * @throws {import("./errors.ts").TimeoutError} past `timeout`.
 * @throws {NotSupportedError} for v1 with a backend that cannot set its ICE
 * credentials.
 * @throws {import("./errors.ts").InvalidIceCredentialError} in v2, if the
 * stack's ICE password breaks the grammar or is too long to carry.
 */
export async function dialDirect(
  addr: string,
  options: DirectDialOptions,
): Promise<WebRTCConnection> {
  const target = parseWebRTCDirectMultiaddr(addr);
  const expectedPeer = target.peerId === undefined
    ? undefined
    : peerIdFromString(target.peerId);
  const { backend } = options;
  const version = options.ufragVersion ?? 1;
  if (version !== 1 && version !== 2) {
    throw new RangeError(`ufragVersion is 1 or 2, not ${version}`);
  }
  // v2 leaves the stack's own credentials alone, so any backend can dial.
  if (version === 1 && !backend.capabilities.directDial) {
    throw new NotSupportedError(
      `the ${backend.name} backend cannot set its ICE credentials, which ` +
        "WebRTC-Direct v1 dialing needs; dial with ufragVersion 2, or use a " +
        "backend whose capabilities.directDial is true, such as libdatachannel",
    );
  }
  const certhash = target.certhashes[0];
  const timeout = options.timeout ?? 20_000;
  const failed = new AbortController();
  const signal = AbortSignal.any([
    failed.signal,
    AbortSignal.timeout(timeout),
    ...(options.signal ? [options.signal] : []),
  ]);

  const pc = backend.createPeerConnection({
    iceServers: [],
    bindAddress: options.bindAddress,
  });
  const channel0 = new WebRTCStream(
    pc.createDataChannel("", { negotiated: true, id: 0 }),
  );
  // Before anything can arrive: channels the listener opens early are kept.
  const connection = new WebRTCConnection(pc, {
    remoteAddr: addr,
    direction: "outbound",
    streamOptions: options.streamOptions,
    handlers: options.handlers,
  });
  const stopWatching = watchFailure(pc, failed);

  try {
    const offer = await pc.createOffer();
    let ufrag: string;
    if (version === 1) {
      ufrag = generateUfrag();
      await pc.setLocalDescription(offer, { ufrag, pwd: ufrag });
    } else {
      await pc.setLocalDescription(offer);
      // Checked against the ICE grammar (and the 256-character bound of the
      // result) before it reaches the answer.
      ufrag = serverUfragV2(readIcePwd(pc.localDescription?.sdp ?? offer.sdp));
    }
    await pc.setRemoteDescription({
      type: "answer",
      sdp: buildServerAnswer({
        host: target.host,
        port: target.port,
        fingerprint: certhash,
        ufrag,
        mid: readMid(pc.localDescription?.sdp ?? offer.sdp),
      }),
    });

    const prologue = noisePrologue({
      dialer: await pc.localFingerprint(),
      listener: certhash,
    });
    const { remotePeer } = await noiseHandshake(channel0, {
      role: noiseRoleOf("dialer"),
      privateKey: libp2pPrivateKey(options.identity),
      prologue,
      expectedPeer,
      signal,
      timeout,
    }).catch((error) => {
      throw failed.signal.aborted ? failed.signal.reason : error;
    });

    // The stack refused any other certificate in DTLS; check what it saw too.
    const seen = pc.remoteFingerprint();
    if (seen && !sameFingerprint(seen, certhash)) {
      throw new ConnectionFailedError(
        "the listener's DTLS certificate does not match the certhash",
      );
    }
    connection.ready(remotePeer);
    return connection;
  } catch (error) {
    connection.close();
    throw error;
  } finally {
    stopWatching();
  }
}

/** Aborts `controller` when the peer connection fails during the dial. */
function watchFailure(
  pc: PeerConnection,
  controller: AbortController,
): () => void {
  const previous = pc.onconnectionstatechange;
  pc.onconnectionstatechange = (state) => {
    if (state === "failed" || state === "closed") {
      controller.abort(
        state === "failed"
          ? new ConnectionFailedError(
            "ICE or DTLS failed: the listener is unreachable, or its " +
              "certificate does not match the certhash",
          )
          : new ConnectionClosedError(),
      );
    }
    previous?.(state);
  };
  return () => {
    pc.onconnectionstatechange = previous;
  };
}

/** The media id of the first m-line, which the answer must repeat. */
function readMid(sdp: string): string | undefined {
  return /^a=mid:(\S+)\r?$/m.exec(sdp)?.[1];
}
