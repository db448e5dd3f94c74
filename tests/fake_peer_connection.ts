/**
 * A deterministic in-process pair of peer connections, for connection-level
 * tests: channels are {@linkcode FakeDataChannel} pairs, and the test drives
 * the connection state by hand ({@linkcode FakePeerConnection.setState}), so
 * `connected → disconnected → connected` and `failed` happen exactly when a
 * test says. No timers, no network, no descriptions.
 *
 * As the seam asks of real stacks, `close()` closes every channel of the
 * connection and each delivers `onclose` (both ends, as an SCTP abort
 * would); a state change alone closes nothing.
 *
 * A test helper only; it is not shipped.
 *
 * @module
 */

import type {
  CertificateFingerprint,
  DataChannel,
  DataChannelInit,
  PeerConnection,
  PeerConnectionState,
  SessionDescription,
} from "../core/backend.ts";
import { NotSupportedError, P2prtcError } from "../core/errors.ts";
import { FakeDataChannel, type FakeLinkOptions } from "./fake_channel.ts";

/** One end of a fake peer connection pair. */
export class FakePeerConnection implements PeerConnection {
  readonly localDescription: SessionDescription | null = null;
  readonly remoteDescription: SessionDescription | null = null;
  ondatachannel: ((channel: DataChannel) => void) | null = null;
  onicecandidate: PeerConnection["onicecandidate"] = null;
  onconnectionstatechange: ((state: PeerConnectionState) => void) | null = null;

  /** The other end. */
  peer!: FakePeerConnection;
  /** Every channel end this connection has created or received. */
  readonly channels = new Set<FakeDataChannel>();

  #state: PeerConnectionState = "connected";
  #nextId: number;
  readonly #link: FakeLinkOptions;

  /** Use {@linkcode createPeerConnectionPair}. */
  constructor(firstId: number, link: FakeLinkOptions) {
    this.#nextId = firstId;
    this.#link = link;
  }

  get connectionState(): PeerConnectionState {
    return this.#state;
  }

  /**
   * Opens a channel pair: on a later microtask both ends open, as an in-band
   * open would, and the peer's end goes to its `ondatachannel`.
   */
  createDataChannel(label: string, init?: DataChannelInit): DataChannel {
    if (this.#state === "closed") {
      throw new P2prtcError("ERR_PEER_CONNECTION_CLOSED", "closed");
    }
    if (label !== "" || init?.negotiated) {
      throw new NotSupportedError("the fake opens unlabelled in-band channels");
    }
    const id = this.#nextId;
    this.#nextId += 2;
    const local = new FakeDataChannel(id, {
      ...this.#link,
      startConnecting: true,
    });
    const remote = new FakeDataChannel(id, {
      ...this.#link,
      startConnecting: true,
    });
    local.peer = remote;
    remote.peer = local;
    this.channels.add(local);
    this.peer.channels.add(remote);
    queueMicrotask(() => {
      if (this.peer.#state === "closed" || local.readyState !== "connecting") {
        local.abruptClose();
        return;
      }
      // Announced open, as the W3C event hands it over.
      local.open();
      this.peer.ondatachannel?.(remote);
    });
    return local;
  }

  /**
   * Moves this end to `state` and reports it, as ICE and DTLS would. Nothing
   * else happens (but for `closed`, which is {@linkcode close}): what a
   * state means is up to the connection.
   */
  setState(state: PeerConnectionState): void {
    // A stack that reports `closed` has closed its channels too.
    if (state === "closed") return this.close();
    if (this.#state === "closed" || this.#state === state) return;
    this.#state = state;
    this.onconnectionstatechange?.(state);
  }

  /** Closes every channel, both ends at once, losing what is in flight. */
  close(): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    for (const channel of this.channels) {
      if (channel.readyState !== "closed") channel.abruptClose();
    }
    this.onconnectionstatechange?.("closed");
  }

  /** Channel ends of this connection not yet closed. */
  openChannels(): number {
    let open = 0;
    for (const channel of this.channels) {
      if (channel.readyState !== "closed") open++;
    }
    return open;
  }

  createOffer(): Promise<SessionDescription> {
    return Promise.reject(new NotSupportedError("the fake has no SDP"));
  }

  createAnswer(): Promise<SessionDescription> {
    return Promise.reject(new NotSupportedError("the fake has no SDP"));
  }

  setLocalDescription(): Promise<void> {
    return Promise.reject(new NotSupportedError("the fake has no SDP"));
  }

  setRemoteDescription(): Promise<void> {
    return Promise.reject(new NotSupportedError("the fake has no SDP"));
  }

  addIceCandidate(): Promise<void> {
    return Promise.resolve();
  }

  localFingerprint(): Promise<CertificateFingerprint> {
    return Promise.reject(new NotSupportedError("the fake has no DTLS"));
  }

  remoteFingerprint(): CertificateFingerprint | null {
    return null;
  }
}

/**
 * Two connected fake peer connections: `a` opens even channel ids, `b` odd
 * ones, as a DTLS client and server would. `link` shapes every channel.
 */
export function createPeerConnectionPair(
  link: FakeLinkOptions = {},
): [FakePeerConnection, FakePeerConnection] {
  const a = new FakePeerConnection(2, link);
  const b = new FakePeerConnection(1, link);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
