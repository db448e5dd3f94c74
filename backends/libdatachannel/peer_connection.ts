/**
 * A {@linkcode PeerConnection} over a native `node-datachannel` peer
 * connection.
 *
 * libdatachannel differs from the W3C API in one way that shapes this file:
 * it has no `createOffer()` that leaves the description unapplied, and ICE
 * credentials can only be chosen when a description is generated. So:
 *
 * - `createOffer()`/`createAnswer()` generate and apply the description
 *   natively, but nothing shows it yet: `localDescription` stays `null`, and
 *   candidates and state changes are held back until `setLocalDescription`.
 *   What they return carries no candidate, as from a W3C stack: gathering
 *   has started by then and may have listed some, and an offer that gives
 *   the answerer an address early exposes the race below.
 * - `setLocalDescription(d, credentials)` with credentials other than the
 *   generated ones (or an SDP whose ufrag/pwd were changed) recreates the
 *   native connection and its channels and generates again with them. Nothing
 *   has reached the peer by then, so that is invisible to it. Without a
 *   `certificate` option the rebuilt connection has a new DTLS certificate;
 *   `localFingerprint()` reports the one in use.
 *
 * libdatachannel has a race this file cannot remove, only stay clear of:
 * its `setRemoteDescription` hands the description to the ICE agent before
 * the peer connection stores it, and DTLS starts on the ICE agent's thread
 * the moment ICE connects. The agent answers checks before it has a remote
 * description, so if the peer checked it already, ICE can connect inside
 * `setRemoteDescription`: DTLS then checks the peer's certificate against no
 * description and fails ("certificate verify failed"), or a buffered
 * ClientHello is replayed before the DTLS transport is ready and lost until
 * it is resent a second later. Remote candidates are therefore never given
 * to libdatachannel before the remote description (and an answerer's not
 * before its answer), and an offerer's candidates must not reach the peer
 * before the answer is applied: `core/negotiation.ts` holds them, and
 * `createOffer` shows none.
 *
 * Internal to the libdatachannel backend.
 *
 * @module
 */

import type {
  CertificateFingerprint,
  CertificatePem,
  DataChannel,
  DataChannelInit,
  IceCandidate,
  IceCredentials,
  PeerConnection,
  PeerConnectionState,
  SessionDescription,
} from "../../core/backend.ts";
import { NotSupportedError, P2prtcError } from "../../core/errors.ts";
import { fingerprintFromHex } from "../../core/certhash.ts";
import { assertIceCredentials } from "../../core/ufrag.ts";
import {
  findAttribute,
  findFingerprint,
  findIceCredentials,
} from "../../core/sdp.ts";
import {
  type ChannelOwner,
  LibdatachannelDataChannel,
  messageOf,
} from "./data_channel.ts";
import {
  type NativeConfig,
  type NativeDataChannel,
  type NativePeerConnection,
  openNative,
  releaseNative,
} from "./native.ts";
import {
  candidateFromConnectionLine,
  fingerprintOfPem,
  takeCandidates,
} from "./sdp.ts";

/** What a peer connection reports to the backend that made it. */
export interface ConnectionOwner {
  /** Whether to stop libdatachannel when its last connection is gone. */
  readonly stopWhenIdle: boolean;
  /** A handle was opened (`+1`) or released (`-1`). */
  count(kind: "peerConnections" | "dataChannels", delta: 1 | -1): void;
}

const STATES: ReadonlySet<string> = new Set<PeerConnectionState>([
  "new",
  "connecting",
  "connected",
  "disconnected",
  "failed",
  "closed",
]);

/** The description libdatachannel has generated and applied. */
interface Applied {
  type: "offer" | "answer";
  ufrag: string;
  pwd: string;
}

function invalidState(message: string): P2prtcError {
  return new P2prtcError("ERR_INVALID_STATE", message);
}

/** One peer connection; see the module documentation. */
export class LibdatachannelPeerConnection
  implements PeerConnection, ChannelOwner {
  /** The peer opened a data channel. */
  ondatachannel: ((channel: DataChannel) => void) | null = null;
  /** A local candidate was gathered; `null` at the end. */
  onicecandidate: ((candidate: IceCandidate | null) => void) | null = null;
  /** The connection state changed. */
  onconnectionstatechange: ((state: PeerConnectionState) => void) | null = null;

  #owner: ConnectionOwner;
  #config: NativeConfig;
  #certificate: CertificatePem | undefined;
  #native: NativePeerConnection;
  #state: PeerConnectionState = "new";
  /** No handler is called any more: closed locally, or `closed` delivered. */
  #silent = false;
  /** The handle was released. */
  #released = false;
  #applied: Applied | null = null;
  #local: SessionDescription | null = null;
  #remote: SessionDescription | null = null;
  #remoteMid = "0";
  /** Native events waiting for `setLocalDescription`; `null` once it ran. */
  #held: (() => void)[] | null = [];
  /**
   * Remote candidates not yet given to libdatachannel: until the remote
   * description, and for an answerer until its own answer is applied.
   */
  #pendingCandidates: IceCandidate[] = [];
  /** The remote description as libdatachannel got it (no candidates). */
  #remoteForNative: string | null = null;
  #channels = new Set<LibdatachannelDataChannel>();
  #remoteFingerprint: CertificateFingerprint | null = null;
  #remoteAlgorithm: string | undefined;
  #pemFingerprint: Promise<CertificateFingerprint> | undefined;
  #localSet = Promise.withResolvers<void>();

  /** Creates the native connection for `config`. */
  constructor(
    owner: ConnectionOwner,
    config: NativeConfig,
    certificate: CertificatePem | undefined,
  ) {
    this.#owner = owner;
    this.#config = config;
    this.#certificate = certificate;
    // Nobody may wait on it: a rejection only means "closed first".
    this.#localSet.promise.catch(() => {});
    this.#native = this.#open();
    owner.count("peerConnections", 1);
  }

  /** The current state. */
  get connectionState(): PeerConnectionState {
    return this.#state;
  }

  /** The applied local description, with the candidates gathered so far. */
  get localDescription(): SessionDescription | null {
    if (this.#local === null || this.#silent) return this.#local;
    const sdp = this.#nativeLocalSdp();
    if (sdp !== undefined) this.#local = { type: this.#local.type, sdp };
    return this.#local;
  }

  /** The applied remote description. */
  get remoteDescription(): SessionDescription | null {
    return this.#remote;
  }

  /** Creates a data channel; see {@linkcode DataChannelInit}. */
  createDataChannel(label: string, init?: DataChannelInit): DataChannel {
    this.#assertUsable();
    const negotiated = init?.negotiated === true;
    if (negotiated && !(Number.isInteger(init?.id) && init!.id! >= 0)) {
      throw new P2prtcError(
        "ERR_DATA_CHANNEL",
        "a negotiated data channel needs an id",
      );
    }
    const channel = new LibdatachannelDataChannel(
      this.#nativeChannel(this.#native, label, init),
      label,
      init,
      this,
      false,
    );
    this.#adopt(channel);
    return channel;
  }

  /** Generates the offer (applied natively, not yet visible). */
  // deno-lint-ignore require-await
  async createOffer(): Promise<SessionDescription> {
    this.#assertUsable();
    if (this.#remote !== null || this.#applied?.type === "answer") {
      throw invalidState("an offer cannot follow a remote offer");
    }
    if (this.#applied === null) this.#generate("offer", undefined);
    return { type: "offer", sdp: this.#generatedSdp() };
  }

  /** Generates the answer (applied natively, not yet visible). */
  // deno-lint-ignore require-await
  async createAnswer(): Promise<SessionDescription> {
    this.#assertUsable();
    if (this.#remote?.type !== "offer") {
      throw invalidState("an answer needs a remote offer first");
    }
    if (this.#applied === null) this.#generate("answer", undefined);
    return { type: "answer", sdp: this.#generatedSdp() };
  }

  /**
   * Applies the local description. The ICE credentials used are, in order:
   * `credentials`, those written in `description.sdp`, or libdatachannel's
   * own.
   */
  // deno-lint-ignore require-await
  async setLocalDescription(
    description: SessionDescription,
    credentials?: IceCredentials,
  ): Promise<void> {
    this.#assertUsable();
    const { type } = description;
    if (type !== "offer" && type !== "answer") {
      throw invalidState(`unknown description type ${type}`);
    }
    if (this.#local !== null) {
      throw new NotSupportedError(
        "renegotiation: libdatachannel opens later data channels without it",
      );
    }
    if (type === "answer" && this.#remote?.type !== "offer") {
      throw invalidState("an answer needs a remote offer first");
    }
    if (type === "offer" && this.#remote !== null) {
      throw invalidState("an offer cannot follow a remote offer");
    }
    const wanted = credentials ?? findIceCredentials(description.sdp ?? "");
    if (wanted !== undefined) assertIceCredentials(wanted);
    if (this.#applied === null) {
      this.#generate(type, wanted);
    } else if (this.#applied.type !== type) {
      throw invalidState(
        `the generated description is an ${this.#applied.type}`,
      );
    } else if (
      wanted !== undefined &&
      (wanted.ufrag !== this.#applied.ufrag || wanted.pwd !== this.#applied.pwd)
    ) {
      this.#rebuild(type, wanted);
    }
    this.#local = { type, sdp: this.#nativeLocalSdp() ?? "" };
    this.#localSet.resolve();
    this.#release();
    this.#flushCandidates();
  }

  /** Applies the remote description, then any candidates held for it. */
  // deno-lint-ignore require-await
  async setRemoteDescription(description: SessionDescription): Promise<void> {
    this.#assertUsable();
    const { type, sdp } = description;
    if (type !== "offer" && type !== "answer") {
      throw invalidState(`unknown description type ${type}`);
    }
    if (this.#remote !== null) {
      throw new NotSupportedError(
        "renegotiation: libdatachannel opens later data channels without it",
      );
    }
    if (type === "answer" && this.#applied?.type !== "offer") {
      throw invalidState("a remote answer needs a local offer first");
    }
    if (type === "offer" && this.#applied !== null) {
      throw invalidState("a remote offer cannot follow a local offer");
    }
    // An answerer's candidates wait for its answer: libdatachannel starts
    // checking them as soon as it generates the answer, and an answer
    // generated for `createAnswer` may still be replaced (see #rebuild).
    const { sdp: bare, candidates } = takeCandidates(sdp);
    const forNative = type === "offer" ? bare : sdp;
    try {
      this.#native.setRemoteDescription(forNative, type);
    } catch (error) {
      throw new P2prtcError(
        "ERR_INVALID_DESCRIPTION",
        `libdatachannel refused the remote ${type}: ${messageOf(error)}`,
        { cause: error },
      );
    }
    this.#remote = { type, sdp };
    this.#remoteForNative = forNative;
    this.#remoteMid = findAttribute(sdp, "mid") ?? "0";
    if (type === "offer") {
      // A WebRTC-Direct listener's offer is built from the dialer's first
      // STUN request and may carry no candidate. libjuice's agent then sends
      // no check of its own and waits for the dialer's retransmission, about
      // 500 ms later; the address the request came from, as js-libp2p's
      // listener does, lets it check at once.
      const inferred = this.#config.enableIceUdpMux && candidates.length === 0
        ? candidateFromConnectionLine(sdp)
        : undefined;
      if (inferred !== undefined) candidates.push(inferred);
      this.#pendingCandidates.unshift(
        ...candidates.map((c) => ({ ...c, sdpMLineIndex: null })),
      );
    }
    this.#flushCandidates();
  }

  /** Adds a remote candidate, or holds it until the remote description. */
  // deno-lint-ignore require-await
  async addIceCandidate(candidate: IceCandidate): Promise<void> {
    if (this.#silent) return;
    if (candidate.candidate === "") return;
    if (!this.#candidatesFlow()) {
      this.#pendingCandidates.push(candidate);
      return;
    }
    this.#addNative(candidate);
  }

  /** The sha-256 fingerprint of the local DTLS certificate. */
  async localFingerprint(): Promise<CertificateFingerprint> {
    if (this.#certificate !== undefined) {
      this.#pemFingerprint ??= fingerprintOfPem(this.#certificate.certificate);
      return await this.#pemFingerprint;
    }
    // libdatachannel makes its certificate when it first generates a
    // description, and a rebuild replaces it, so only the applied
    // description tells.
    await this.#localSet.promise;
    const sdp = this.#local?.sdp ?? "";
    const fingerprint = findFingerprint(sdp);
    if (fingerprint === undefined) {
      throw new P2prtcError(
        "ERR_NO_FINGERPRINT",
        "the local description has no sha-256 fingerprint",
      );
    }
    return fingerprint;
  }

  /** The fingerprint the peer's DTLS certificate has, once DTLS is done. */
  remoteFingerprint(): CertificateFingerprint | null {
    if (this.#remoteFingerprint === null && !this.#released) {
      this.#readRemoteFingerprint();
    }
    if (this.#remoteAlgorithm !== undefined) {
      // libdatachannel hashes the peer's certificate with the algorithm of
      // the remote SDP's fingerprint and does not expose the certificate.
      throw new NotSupportedError(
        `the peer announced a ${this.#remoteAlgorithm} fingerprint; libp2p needs sha-256`,
      );
    }
    return this.#remoteFingerprint;
  }

  /** Closes the connection; channels deliver `onclose`. Idempotent. */
  close(): void {
    if (this.#silent) {
      if (this.#state !== "closed") this.#state = "closed";
      this.#closeNative(this.#native);
      return;
    }
    this.#silent = true;
    this.#state = "closed";
    this.#held = null;
    this.#localSet.reject(invalidState("the peer connection was closed"));
    for (const channel of this.#channels) channel.close();
    this.#closeNative(this.#native);
  }

  /** A channel delivered `onclose`. */
  channelClosed(channel: LibdatachannelDataChannel): void {
    if (this.#channels.delete(channel)) {
      this.#owner.count("dataChannels", -1);
    }
  }

  #assertUsable(): void {
    if (this.#silent) {
      throw new P2prtcError(
        "ERR_PEER_CONNECTION_CLOSED",
        "the peer connection is closed",
      );
    }
  }

  #adopt(channel: LibdatachannelDataChannel): void {
    this.#channels.add(channel);
    this.#owner.count("dataChannels", 1);
  }

  /** Creates a native connection and routes its events here while current. */
  #open(): NativePeerConnection {
    const native = openNative(this.#config);
    const current = () => this.#native === native;
    let closed = false;
    native.onStateChange((state) => {
      if (closed) return;
      if (state === "closed") {
        closed = true;
        // cleanup() must not run inside this native callback.
        setTimeout(() => this.#nativeClosed(native), 0);
      }
      if (current() && STATES.has(state)) {
        this.#emit(() => this.#changeState(state as PeerConnectionState));
      }
    });
    native.onLocalCandidate((candidate, mid) => {
      if (current()) this.#emit(() => this.#localCandidate(candidate, mid));
    });
    native.onGatheringStateChange((state) => {
      if (current() && state === "complete") {
        this.#emit(() => this.onicecandidate?.(null));
      }
    });
    native.onDataChannel((nativeChannel) => {
      if (!current() || this.#silent) {
        this.#closeChannel(nativeChannel);
        return;
      }
      const channel = new LibdatachannelDataChannel(
        nativeChannel,
        labelOf(nativeChannel),
        undefined,
        this,
        true,
      );
      this.#adopt(channel);
      this.ondatachannel?.(channel);
    });
    return native;
  }

  /** Runs a native event's effect now, or after `setLocalDescription`. */
  #emit(effect: () => void): void {
    if (this.#silent) return;
    if (this.#held !== null) this.#held.push(effect);
    else effect();
  }

  /**
   * Lets the held events through in a task of their own, as the W3C API
   * fires them: after `setLocalDescription` has resolved and its caller has
   * had a chance to send the description before the first candidate.
   */
  #release(): void {
    const held = this.#held;
    if (held === null) return;
    if (held.length === 0) {
      this.#held = null;
      return;
    }
    // Kept non-null until it has run, so that events arriving meanwhile
    // queue up behind the held ones.
    setTimeout(() => {
      if (this.#held !== held) return;
      this.#held = null;
      for (const effect of held) {
        if (this.#silent) return;
        effect();
      }
    }, 0);
  }

  #changeState(state: PeerConnectionState): void {
    if (this.#silent || state === this.#state) return;
    this.#state = state;
    if (state === "connected") this.#readRemoteFingerprint();
    if (state === "closed") this.#silent = true;
    this.onconnectionstatechange?.(state);
  }

  #localCandidate(line: string, mid: string): void {
    const candidate = line.startsWith("a=") ? line.slice(2) : line;
    this.onicecandidate?.({
      candidate,
      sdpMid: mid,
      sdpMLineIndex: 0,
      usernameFragment: this.#applied?.ufrag ?? null,
    });
  }

  /** Whether remote candidates go to libdatachannel now. */
  #candidatesFlow(): boolean {
    return this.#remote !== null &&
      (this.#remote.type === "answer" || this.#local !== null);
  }

  /** Gives libdatachannel the candidates held back, if it may have them. */
  #flushCandidates(): void {
    if (!this.#candidatesFlow()) return;
    const pending = this.#pendingCandidates;
    this.#pendingCandidates = [];
    for (const candidate of pending) {
      try {
        this.#addNative(candidate);
      } catch {
        // Its caller was told it was accepted; a bad candidate only means
        // one pair fewer, as in the W3C API.
      }
    }
  }

  #addNative(candidate: IceCandidate): void {
    if (candidate.candidate === "") return;
    const mid = candidate.sdpMid ?? this.#remoteMid;
    try {
      this.#native.addRemoteCandidate(candidate.candidate, mid);
    } catch (error) {
      throw new P2prtcError(
        "ERR_INVALID_CANDIDATE",
        `libdatachannel refused the candidate: ${messageOf(error)}`,
        { cause: error },
      );
    }
  }

  /**
   * Generates and applies a description natively. libdatachannel aborts the
   * process on some refusals instead of throwing, so the cases it refuses
   * are ruled out here first.
   */
  #generate(type: "offer" | "answer", credentials?: IceCredentials): void {
    if (type === "offer" && this.#channels.size === 0) {
      throw new NotSupportedError(
        "libdatachannel cannot make an offer without a data channel: create one first",
      );
    }
    const state = this.#native.state();
    if (state === "closed" || state === "failed") {
      throw new P2prtcError(
        "ERR_PEER_CONNECTION_CLOSED",
        "the peer connection is closed",
      );
    }
    if (credentials === undefined) {
      this.#native.setLocalDescription(type);
    } else {
      this.#native.setLocalDescription(type, {
        iceUfrag: credentials.ufrag,
        icePwd: credentials.pwd,
      });
    }
    const applied = findIceCredentials(this.#nativeLocalSdp() ?? "");
    this.#applied = {
      type,
      ufrag: applied?.ufrag ?? "",
      pwd: applied?.pwd ?? "",
    };
  }

  /**
   * Replaces the native connection by a fresh one that generates with
   * `credentials`. Only done before the local description is visible, so
   * the peer has seen nothing of the old one.
   */
  #rebuild(type: "offer" | "answer", credentials: IceCredentials): void {
    const old = this.#native;
    // Opened before the old one is closed, so the live count never drops
    // to zero in between and cleanup() cannot run.
    this.#native = this.#open();
    this.#held = [];
    for (const channel of this.#channels) {
      if (channel.readyState === "closed") continue;
      channel.rebind(
        this.#nativeChannel(this.#native, channel.label, channel.init),
      );
    }
    if (this.#remote !== null && this.#remoteForNative !== null) {
      // The old connection had no remote candidate yet, so it never sent a
      // check the peer could have answered.
      this.#native.setRemoteDescription(
        this.#remoteForNative,
        this.#remote.type,
      );
    }
    this.#closeNative(old);
    this.#applied = null;
    this.#generate(type, credentials);
  }

  #nativeChannel(
    native: NativePeerConnection,
    label: string,
    init: DataChannelInit | undefined,
  ): NativeDataChannel {
    try {
      return init?.negotiated === true
        ? native.createDataChannel(label, { negotiated: true, id: init.id })
        : native.createDataChannel(label);
    } catch (error) {
      throw new P2prtcError(
        "ERR_DATA_CHANNEL",
        `libdatachannel refused the data channel: ${messageOf(error)}`,
        { cause: error },
      );
    }
  }

  /** The generated description without the candidates gathered so far. */
  #generatedSdp(): string {
    return takeCandidates(this.#nativeLocalSdp() ?? "").sdp;
  }

  #nativeLocalSdp(): string | undefined {
    try {
      return this.#native.localDescription()?.sdp;
    } catch {
      return undefined;
    }
  }

  /** Keeps the peer's fingerprint once DTLS has produced it. Never throws. */
  #readRemoteFingerprint(): void {
    let value: unknown;
    try {
      value = this.#native.remoteFingerprint();
    } catch {
      return;
    }
    // Before DTLS it is `{ value: "" }`; once freed, a bare number.
    if (typeof value !== "object" || value === null) return;
    const { value: hex, algorithm } = value as {
      value?: string;
      algorithm?: string;
    };
    if (!hex) return;
    if (algorithm?.toLowerCase() !== "sha-256") {
      this.#remoteAlgorithm = algorithm ?? "unknown";
      return;
    }
    try {
      this.#remoteFingerprint = fingerprintFromHex(hex);
    } catch {
      // Not a sha-256 digest in the usual form: leave it unknown.
    }
  }

  #closeNative(native: NativePeerConnection): void {
    // Read before the native object is freed; DTLS may have finished.
    if (native === this.#native && !this.#released) {
      this.#readRemoteFingerprint();
    }
    try {
      native.close();
    } catch {
      // node-datachannel reports close errors on stderr and carries on.
    }
  }

  #closeChannel(native: NativeDataChannel): void {
    try {
      native.close();
    } catch {
      // Already freed.
    }
  }

  /** A native connection delivered `closed`; runs in a task of its own. */
  #nativeClosed(native: NativePeerConnection): void {
    if (native === this.#native && !this.#released) {
      this.#readRemoteFingerprint();
      this.#released = true;
      this.#silent = true;
      this.#state = "closed";
      this.#held = null;
      this.#localSet.reject(invalidState("the peer connection was closed"));
      // libdatachannel does not report the close of channels whose
      // connection never came up; every channel is closed now anyway.
      for (const channel of [...this.#channels]) channel.finish();
      // Frees the native callbacks at once, even if close() is never called.
      this.#closeNative(native);
      this.#owner.count("peerConnections", -1);
    }
    releaseNative(this.#owner.stopWhenIdle);
  }
}

function labelOf(native: NativeDataChannel): string {
  try {
    return native.getLabel();
  } catch {
    return "";
  }
}
