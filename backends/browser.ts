/**
 * The browser backend: {@linkcode PeerConnectionBackend} over the runtime's
 * own `RTCPeerConnection`.
 *
 * It is nearly a pass-through. What it adds: binary messages as `Uint8Array`
 * (text messages become their UTF-8 bytes), remote candidates held until the
 * remote description is applied, ICE credentials written into the local SDP
 * before it is applied (WebRTC-Direct dialing), both DTLS fingerprints read
 * from the SDP, and a count of open handles.
 *
 * What a browser cannot do, and what this backend does instead:
 * - Import a certificate: a `certificate` option throws
 *   {@linkcode NotSupportedError}; the browser makes a fresh one per
 *   connection, which is what the spec asks of browsers anyway.
 * - Bind to an address: `bindAddress` becomes a candidate filter. Local
 *   candidates on any other address are not reported through
 *   `onicecandidate` and are taken out of `localDescription`, so the peer
 *   never learns them. The browser still gathers them. `"0.0.0.0"` and
 *   `"::"` filter nothing. A page only has its real addresses, loopback
 *   included, when the browser lets it enumerate interfaces; otherwise its
 *   host candidates are `<uuid>.local` mDNS names, which no address matches
 *   (see `tests/browser/chromium.ts` for what Chromium needs).
 * - Listen on WebRTC-Direct: `capabilities.directListen` is `false`.
 * - Set ICE credentials through an API: there is none, so they are written
 *   into the SDP ("munging"). Chromium 156 accepts that unless its
 *   `WebRTC-NoSdpMangleUfrag` field trial is on, in which case
 *   `setLocalDescription` rejects with `InvalidModificationError`.
 *   {@linkcode createBrowserBackend} tries it once so that
 *   `capabilities.directDial` says what this browser does; a refusal met
 *   later also turns it to `false` and throws {@linkcode NotSupportedError}.
 *
 * Deno has no `RTCPeerConnection`; there, use the libdatachannel or werift
 * backend. Constructing this one without it throws
 * {@linkcode NotSupportedError}.
 *
 * @example Open a data channel between two peer connections in one page
 * ```ts
 * import { createBrowserBackend } from "./browser.ts";
 *
 * // Deno has no RTCPeerConnection; this runs in a browser.
 * if ("RTCPeerConnection" in globalThis) {
 *   const backend = await createBrowserBackend();
 *   const a = backend.createPeerConnection({ bindAddress: "127.0.0.1" });
 *   const b = backend.createPeerConnection({ bindAddress: "127.0.0.1" });
 *   a.onicecandidate = (c) => c && b.addIceCandidate(c);
 *   b.onicecandidate = (c) => c && a.addIceCandidate(c);
 *   b.ondatachannel = (channel) => {
 *     channel.onmessage = (bytes) => console.log(new TextDecoder().decode(bytes));
 *   };
 *   const channel = a.createDataChannel("");
 *   channel.onopen = () => channel.send(new TextEncoder().encode("hello"));
 *
 *   const offer = await a.createOffer();
 *   await a.setLocalDescription(offer);
 *   await b.setRemoteDescription(offer);
 *   const answer = await b.createAnswer();
 *   await b.setLocalDescription(answer);
 *   await a.setRemoteDescription(answer);
 * }
 * ```
 *
 * @module
 */

import type {
  BackendCapabilities,
  CertificateFingerprint,
  DataChannel,
  DataChannelInit,
  DataChannelState,
  HandleCount,
  IceCandidate,
  IceCredentials,
  PeerConnection,
  PeerConnectionBackend,
  PeerConnectionOptions,
  PeerConnectionState,
  SessionDescription,
} from "../core/backend.ts";
import { NotSupportedError } from "../core/errors.ts";
import {
  candidateAddress,
  filterCandidates,
  findFingerprint,
  replaceIceCredentials,
} from "../core/sdp.ts";

// Deno's type library has no WebRTC types, so the few members used here are
// declared structurally. They are the W3C API's, narrowed to what we touch.

interface NativeDataChannel {
  readonly id: number | null;
  readonly label: string;
  readonly readyState: DataChannelState;
  readonly bufferedAmount: number;
  bufferedAmountLowThreshold: number;
  binaryType: string;
  send(data: Uint8Array): void;
  close(): void;
  onopen: (() => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onbufferedamountlow: (() => void) | null;
  onclose: (() => void) | null;
  onerror: ((event: { error?: unknown }) => void) | null;
}

interface NativeDescription {
  type: string;
  sdp: string;
}

interface NativeCandidate {
  candidate: string;
  sdpMid: string | null;
  sdpMLineIndex: number | null;
  usernameFragment: string | null;
}

interface NativePeerConnection {
  readonly connectionState: PeerConnectionState;
  readonly localDescription: NativeDescription | null;
  readonly remoteDescription: NativeDescription | null;
  readonly sctp: { readonly transport: { readonly state: string } } | null;
  createDataChannel(
    label: string,
    init?: { negotiated?: boolean; id?: number },
  ): NativeDataChannel;
  createOffer(): Promise<NativeDescription>;
  createAnswer(): Promise<NativeDescription>;
  setLocalDescription(description: NativeDescription): Promise<void>;
  setRemoteDescription(description: NativeDescription): Promise<void>;
  addIceCandidate(candidate: IceCandidate): Promise<void>;
  close(): void;
  ondatachannel: ((event: { channel: NativeDataChannel }) => void) | null;
  onicecandidate:
    | ((event: { candidate: NativeCandidate | null }) => void)
    | null;
  onconnectionstatechange: (() => void) | null;
}

type NativePeerConnectionConstructor = new (configuration: {
  iceServers: {
    urls: string | string[];
    username?: string;
    credential?: string;
  }[];
}) => NativePeerConnection;

/** Finds the runtime's `RTCPeerConnection`, or says which backend to use. */
function nativeConstructor(): NativePeerConnectionConstructor {
  const ctor = (globalThis as { RTCPeerConnection?: unknown })
    .RTCPeerConnection;
  if (typeof ctor !== "function") {
    throw new NotSupportedError(
      "no RTCPeerConnection in this runtime; use the libdatachannel or werift backend in Deno",
    );
  }
  return ctor as NativePeerConnectionConstructor;
}

const textEncoder = new TextEncoder();

/** Handle counts shared by a backend and everything it created. */
interface Counts {
  peerConnections: number;
  dataChannels: number;
}

/** Wraps a native channel; `owner` learns when it closes. */
class BrowserDataChannel implements DataChannel {
  onopen: (() => void) | null = null;
  onmessage: ((data: Uint8Array) => void) | null = null;
  onbufferedamountlow: (() => void) | null = null;
  onclose: (() => void) | null = null;
  onerror: ((error: Error) => void) | null = null;

  #native: NativeDataChannel;
  #owner: BrowserPeerConnection;
  #closed = false;

  constructor(native: NativeDataChannel, owner: BrowserPeerConnection) {
    this.#native = native;
    this.#owner = owner;
    // Before any message event can be dispatched: Blob is the default, and
    // reading a Blob is asynchronous.
    native.binaryType = "arraybuffer";
    native.onopen = () => this.onopen?.();
    native.onmessage = ({ data }) => {
      if (data instanceof ArrayBuffer) this.onmessage?.(new Uint8Array(data));
      else if (typeof data === "string") {
        this.onmessage?.(textEncoder.encode(data));
      }
    };
    native.onbufferedamountlow = () => this.onbufferedamountlow?.();
    native.onerror = ({ error }) => {
      if (this.#closed) return;
      this.onerror?.(
        error instanceof Error ? error : new Error(String(error ?? "error")),
      );
    };
    native.onclose = () => this.markClosed()?.();
  }

  get id(): number | null {
    return this.#native.id;
  }

  get label(): string {
    return this.#native.label;
  }

  get readyState(): DataChannelState {
    return this.#closed ? "closed" : this.#native.readyState;
  }

  get bufferedAmount(): number {
    return this.#native.bufferedAmount;
  }

  get bufferedAmountLowThreshold(): number {
    return this.#native.bufferedAmountLowThreshold;
  }

  set bufferedAmountLowThreshold(value: number) {
    this.#native.bufferedAmountLowThreshold = value;
  }

  send(data: Uint8Array): void {
    this.#native.send(data);
  }

  close(): void {
    this.#native.close();
  }

  /**
   * Records the close once, whichever way it came: the native close event,
   * or the peer connection closing (browsers fire no channel events then).
   * Returns the handler to call, so the caller chooses when.
   */
  markClosed(): (() => void) | null {
    if (this.#closed) return null;
    this.#closed = true;
    this.#owner.forget(this);
    const onclose = this.onclose;
    this.onopen = this.onmessage = this.onbufferedamountlow = null;
    this.onclose = this.onerror = null;
    return onclose;
  }
}

/** Whether an error is the browser refusing a changed SDP. */
function isMungingRefusal(error: unknown): boolean {
  return (error as { name?: unknown } | null)?.name ===
    "InvalidModificationError";
}

const MUNGING_REFUSED =
  "this browser refuses an SDP whose ICE credentials were changed " +
  "(Chromium's WebRTC-NoSdpMangleUfrag), so it cannot dial WebRTC-Direct v1";

/** Wraps a native peer connection. */
class BrowserPeerConnection implements PeerConnection {
  ondatachannel: ((channel: DataChannel) => void) | null = null;
  onicecandidate: ((candidate: IceCandidate | null) => void) | null = null;
  onconnectionstatechange: ((state: PeerConnectionState) => void) | null = null;

  #native: NativePeerConnection;
  #backend: BrowserBackend;
  #counts: Counts;
  #bindAddress: string | undefined;
  #channels = new Set<BrowserDataChannel>();
  // Candidates that came before the remote description; `null` once it is
  // applied and they have been handed over.
  #heldCandidates: IceCandidate[] | null = [];
  #remoteFingerprint: CertificateFingerprint | null = null;
  #closed = false;

  constructor(
    native: NativePeerConnection,
    backend: BrowserBackend,
    counts: Counts,
    bindAddress: string | undefined,
  ) {
    this.#native = native;
    this.#backend = backend;
    this.#counts = counts;
    // An unspecified address means every interface, as when binding.
    this.#bindAddress = bindAddress === "0.0.0.0" || bindAddress === "::"
      ? undefined
      : bindAddress;
    counts.peerConnections++;
    native.ondatachannel = ({ channel }) => {
      const wrapped = this.#adopt(channel);
      if (this.ondatachannel) this.ondatachannel(wrapped);
      else wrapped.close();
    };
    native.onicecandidate = ({ candidate }) => {
      if (candidate === null) {
        this.onicecandidate?.(null);
        return;
      }
      if (!this.#wanted(candidate.candidate)) return;
      this.onicecandidate?.({
        candidate: candidate.candidate,
        sdpMid: candidate.sdpMid,
        sdpMLineIndex: candidate.sdpMLineIndex,
        usernameFragment: candidate.usernameFragment,
      });
    };
    native.onconnectionstatechange = () => {
      if (this.#closed) return;
      this.onconnectionstatechange?.(native.connectionState);
    };
  }

  get connectionState(): PeerConnectionState {
    return this.#native.connectionState;
  }

  get localDescription(): SessionDescription | null {
    const description = this.#native.localDescription;
    if (description === null) return null;
    const sdp = this.#bindAddress === undefined
      ? description.sdp
      : filterCandidates(description.sdp, (c) => this.#wanted(c));
    return { type: description.type as SessionDescription["type"], sdp };
  }

  get remoteDescription(): SessionDescription | null {
    const description = this.#native.remoteDescription;
    return description === null ? null : {
      type: description.type as SessionDescription["type"],
      sdp: description.sdp,
    };
  }

  createDataChannel(label: string, init?: DataChannelInit): DataChannel {
    const options = init?.negotiated
      ? { negotiated: true, id: init.id }
      : undefined;
    return this.#adopt(this.#native.createDataChannel(label, options));
  }

  async createOffer(): Promise<SessionDescription> {
    const { sdp } = await this.#native.createOffer();
    return { type: "offer", sdp };
  }

  async createAnswer(): Promise<SessionDescription> {
    const { sdp } = await this.#native.createAnswer();
    return { type: "answer", sdp };
  }

  async setLocalDescription(
    description: SessionDescription,
    credentials?: IceCredentials,
  ): Promise<void> {
    if (credentials === undefined) {
      await this.#native.setLocalDescription(description);
      return;
    }
    // Bad credentials, or an SDP with nothing to munge, fail typed here
    // rather than reach the browser or pass silently.
    const sdp = replaceIceCredentials(description.sdp, credentials);
    try {
      await this.#native.setLocalDescription({ type: description.type, sdp });
    } catch (error) {
      if (!isMungingRefusal(error)) throw error;
      this.#backend.capabilities.directDial = false;
      // NotSupportedError takes no ErrorOptions, so the cause is set after.
      throw Object.assign(new NotSupportedError(MUNGING_REFUSED), {
        cause: error,
      });
    }
  }

  async setRemoteDescription(description: SessionDescription): Promise<void> {
    await this.#native.setRemoteDescription(description);
    const held = this.#heldCandidates;
    if (held === null) return;
    this.#heldCandidates = null;
    for (const candidate of held) {
      // The caller was told these were accepted; one the browser cannot use
      // (an unresolvable mDNS name, say) must not fail the description.
      await this.#add(candidate).catch(() => {});
    }
  }

  async addIceCandidate(candidate: IceCandidate): Promise<void> {
    if (this.#heldCandidates !== null) this.#heldCandidates.push(candidate);
    else await this.#add(candidate);
  }

  localFingerprint(): Promise<CertificateFingerprint> {
    const description = this.#native.localDescription;
    const fingerprint = description && findFingerprint(description.sdp);
    if (fingerprint) return Promise.resolve(fingerprint);
    return this.#offeredFingerprint();
  }

  remoteFingerprint(): CertificateFingerprint | null {
    // The browser checks the certificate the peer presents in DTLS against
    // the remote SDP's fingerprint and fails the connection on a mismatch,
    // so once DTLS is up, that fingerprint is the presented certificate's.
    if (this.#remoteFingerprint !== null) return this.#remoteFingerprint;
    const dtlsUp = this.#native.sctp?.transport.state === "connected" ||
      this.#native.connectionState === "connected";
    const remote = this.#native.remoteDescription;
    if (!dtlsUp || remote === null) return null;
    this.#remoteFingerprint = findFingerprint(remote.sdp) ?? null;
    return this.#remoteFingerprint;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#native.close();
    this.#counts.peerConnections--;
    // Browsers fire no channel or state events once the connection is
    // closed locally; the core still needs to hear of both. The counts drop
    // now; the handlers run after close() returns, so a caller that walks
    // its own channel table here is not re-entered.
    const handlers: (() => void)[] = [];
    for (const channel of this.#channels) {
      const onclose = channel.markClosed();
      if (onclose) handlers.push(onclose);
    }
    const onstatechange = this.onconnectionstatechange;
    if (onstatechange) handlers.push(() => onstatechange("closed"));
    this.ondatachannel = this.onicecandidate = null;
    this.onconnectionstatechange = null;
    if (handlers.length > 0) {
      queueMicrotask(() => {
        for (const handler of handlers) handler();
      });
    }
  }

  /** Called by a channel when it closes. */
  forget(channel: BrowserDataChannel): void {
    if (this.#channels.delete(channel)) this.#counts.dataChannels--;
  }

  #adopt(native: NativeDataChannel): BrowserDataChannel {
    const channel = new BrowserDataChannel(native, this);
    this.#channels.add(channel);
    this.#counts.dataChannels++;
    return channel;
  }

  #wanted(candidate: string): boolean {
    // An empty candidate marks the end of candidates and has no address.
    return this.#bindAddress === undefined || candidate === "" ||
      candidateAddress(candidate) === this.#bindAddress;
  }

  async #add(candidate: IceCandidate): Promise<void> {
    if (this.#closed) return;
    await this.#native.addIceCandidate(candidate);
  }

  /** Before a local description exists, an offer carries the fingerprint. */
  async #offeredFingerprint(): Promise<CertificateFingerprint> {
    // Creating an offer changes no state. An offer with no data channel has
    // no m-line and so no fingerprint.
    const offer = await this.#native.createOffer();
    const fingerprint = findFingerprint(offer.sdp);
    if (fingerprint === undefined) {
      throw new NotSupportedError(
        "the local fingerprint is known once a data channel exists or a local description is set",
      );
    }
    return fingerprint;
  }
}

/** Options for {@linkcode BrowserBackend}. */
export interface BrowserBackendOptions {
  /**
   * Whether this browser accepts changed ICE credentials in its local SDP,
   * which WebRTC-Direct dialing needs. Default `true`, as Chromium 156
   * does unless a field trial says otherwise; {@linkcode createBrowserBackend}
   * finds out instead of assuming.
   */
  directDial?: boolean;
}

/**
 * A {@linkcode PeerConnectionBackend} over the runtime's `RTCPeerConnection`.
 *
 * @example Check what the backend can do
 * ```ts
 * import { BrowserBackend } from "./browser.ts";
 *
 * if ("RTCPeerConnection" in globalThis) {
 *   const backend = new BrowserBackend();
 *   console.log(backend.capabilities.directListen); // false
 * }
 * ```
 */
export class BrowserBackend implements PeerConnectionBackend {
  /** `"browser"`. */
  readonly name = "browser";
  /**
   * `directListen` is always `false`. `directDial` turns `false` when the
   * browser refuses changed ICE credentials.
   */
  readonly capabilities: BackendCapabilities;

  #ctor: NativePeerConnectionConstructor;
  #counts: Counts = { peerConnections: 0, dataChannels: 0 };

  /**
   * Makes the backend.
   *
   * @throws {NotSupportedError} when the runtime has no `RTCPeerConnection`.
   */
  constructor(options: BrowserBackendOptions = {}) {
    this.#ctor = nativeConstructor();
    this.capabilities = {
      directDial: options.directDial ?? true,
      directListen: false,
    };
  }

  /**
   * Creates a peer connection. `bindAddress` filters the local candidates
   * reported (see the module documentation).
   *
   * @throws {NotSupportedError} when `certificate` is given: browsers cannot
   * import one.
   */
  createPeerConnection(options: PeerConnectionOptions = {}): PeerConnection {
    if (options.certificate !== undefined) {
      throw new NotSupportedError(
        "browsers cannot import a PEM certificate for WebRTC; leave `certificate` out and the browser makes one",
      );
    }
    const native = new this.#ctor({ iceServers: options.iceServers ?? [] });
    return new BrowserPeerConnection(
      native,
      this,
      this.#counts,
      options.bindAddress,
    );
  }

  /** The peer connections and data channels open now. */
  openHandles(): HandleCount {
    return { ...this.#counts };
  }
}

/**
 * Makes a {@linkcode BrowserBackend} whose `capabilities.directDial` is
 * found out, not assumed: it applies an offer with changed ICE credentials
 * to a throwaway peer connection and sees whether the browser accepts it.
 *
 * @example Make the backend a browser page uses
 * ```ts
 * import { createBrowserBackend } from "./browser.ts";
 *
 * if ("RTCPeerConnection" in globalThis) {
 *   const backend = await createBrowserBackend();
 *   if (!backend.capabilities.directDial) {
 *     console.log("this browser cannot dial WebRTC-Direct v1");
 *   }
 * }
 * ```
 *
 * @throws {NotSupportedError} when the runtime has no `RTCPeerConnection`.
 */
export async function createBrowserBackend(): Promise<BrowserBackend> {
  const ctor = nativeConstructor();
  const probe = new ctor({ iceServers: [] });
  try {
    probe.createDataChannel("");
    const offer = await probe.createOffer();
    const random = crypto.getRandomValues(new Uint8Array(24));
    const ufrag = "probe" + Array.from(random, (b) => b.toString(16)).join("");
    await probe.setLocalDescription({
      type: "offer",
      sdp: replaceIceCredentials(offer.sdp, { ufrag, pwd: ufrag }),
    });
    return new BrowserBackend({ directDial: true });
  } catch (error) {
    if (!isMungingRefusal(error)) throw error;
    return new BrowserBackend({ directDial: false });
  } finally {
    probe.close();
  }
}
