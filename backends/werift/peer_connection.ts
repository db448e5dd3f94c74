/**
 * A {@linkcode PeerConnection} over a werift `RTCPeerConnection`.
 *
 * Besides translating, it repairs what werift gets wrong for libp2p and for
 * peers other than werift: its default public STUN server, a process-wide
 * DTLS certificate, ICE credentials it will not take from SDP, the SCTP role
 * and stream-id parity it derives from the ICE role, messages its receive
 * path throws on, a close the peer may not notice, and timers that outlive
 * close() or that werift throws on starting twice. It also lets a caller accept any peer certificate
 * (`disableFingerprintVerification`), which werift cannot.
 *
 * Internal to the werift backend.
 *
 * @module
 */

import { createHash } from "node:crypto";
import {
  type RTCCertificate,
  type RTCDataChannel,
  RTCPeerConnection,
} from "werift";
import type {
  CertificateFingerprint,
  DataChannel,
  DataChannelInit,
  IceCandidate,
  IceCredentials,
  PeerConnection,
  PeerConnectionOptions,
  PeerConnectionState,
  SessionDescription,
} from "../../core/backend.ts";
import { P2prtcError } from "../../core/errors.ts";
import { fingerprintFromHex } from "../../core/certhash.ts";
import { assertIceCredentials } from "../../core/ufrag.ts";
import { findIceCredentials, replaceIceCredentials } from "../../core/sdp.ts";
import {
  bindOptions,
  freshCertificate,
  hasStunServer,
  MAX_MESSAGE_SIZE,
  parseCertificate,
} from "./config.ts";
import { type ChannelOwner, WeriftDataChannel } from "./data_channel.ts";
import { Dispatcher } from "./dispatcher.ts";
import { closeNotifyOnStop, FlightWatch } from "./dtls.ts";
import type { Handles } from "./handles.ts";
import {
  type DtlsSocket,
  type FingerprintCheck,
  type IceAgent,
  messageOf,
  type SctpAssociation,
  type SctpTransportInternals,
  type SecureManager,
} from "./internals.ts";
import {
  bundleData,
  deliverReordered,
  guardReceive,
  guardTimerStarts,
  startRtoAtOneSecond,
} from "./sctp.ts";
import {
  ackBeforeReset,
  holdReopenedStreams,
  resetOnce,
} from "./stream_resets.ts";
import { dropMdnsCandidates, isMdnsCandidate, sameCredentials } from "./sdp.ts";

/** Backend-wide settings a connection needs. */
export interface ConnectionSettings {
  /** Resolve remote `.local` candidates instead of dropping them. */
  mdns: boolean;
}

/** One peer connection; see the module documentation. */
export class WeriftPeerConnection implements PeerConnection, ChannelOwner {
  /** The peer opened a data channel. */
  ondatachannel: ((channel: DataChannel) => void) | null = null;
  /** A local candidate was gathered; `null` at the end. */
  onicecandidate: ((candidate: IceCandidate | null) => void) | null = null;
  /** The connection state changed. */
  onconnectionstatechange: ((state: PeerConnectionState) => void) | null = null;
  /** Delivers this connection's and its channels' events, in order. */
  readonly dispatch: Dispatcher = new Dispatcher();

  readonly #pc: RTCPeerConnection;
  readonly #handles: Handles;
  readonly #channels = new Set<WeriftDataChannel>();
  readonly #certificate: Promise<RTCCertificate>;
  readonly #suppressStun: boolean;
  readonly #mdns: boolean;
  readonly #verifyFingerprint: boolean;
  readonly #flights = new FlightWatch();
  readonly #unsubscribe: (() => void)[] = [];
  #state: PeerConnectionState = "new";
  #closed = false;
  #remoteApplied = false;
  #heldCandidates: IceCandidate[] = [];
  #remoteFingerprint: CertificateFingerprint | null = null;
  #sctpWatched: SctpAssociation | null = null;
  #sctpPrepared: SctpAssociation | null = null;

  /** Creates the werift connection and counts it in `handles`. */
  constructor(
    options: PeerConnectionOptions,
    settings: ConnectionSettings,
    handles: Handles,
  ) {
    const iceServers = (options.iceServers ?? []).map((server) => ({
      urls: server.urls,
      username: server.username,
      credential: server.credential,
    }));
    // Without one werift would ask Google's public STUN server; nothing is contacted
    // unless the caller configures it.
    this.#suppressStun = !hasStunServer(iceServers);
    this.#mdns = settings.mdns;
    this.#verifyFingerprint = !options.disableFingerprintVerification;
    const given = options.certificate === undefined
      ? undefined
      : parseCertificate(options.certificate);
    this.#pc = new RTCPeerConnection({
      iceServers,
      bundlePolicy: "max-bundle",
      maxMessageSize: MAX_MESSAGE_SIZE,
      certificates: given ? [given] : [],
      ...bindOptions(options.bindAddress),
    });
    this.#certificate = given
      ? Promise.resolve(given)
      : freshCertificate().then((certificate) => {
        // werift's own default is one certificate for the whole process;
        // the seam promises a fresh one per peer connection.
        (this.#pc as unknown as { secureManager: SecureManager })
          .secureManager.certificate ??= certificate;
        return certificate;
      });
    // A failed generation surfaces from createOffer/createAnswer; this only
    // keeps it from being reported as unhandled in the meantime.
    this.#certificate.catch(() => {});
    this.#handles = handles;
    handles.add("peerConnections", 1);
    this.#subscribe();
  }

  /** The state as the handlers have seen it; `closed` at once after close(). */
  get connectionState(): PeerConnectionState {
    return this.#state;
  }

  /** The applied local description, candidates included once gathered. */
  get localDescription(): SessionDescription | null {
    return toDescription(this.#pc.localDescription);
  }

  /** The applied remote description. */
  get remoteDescription(): SessionDescription | null {
    return toDescription(this.#pc.remoteDescription);
  }

  /** Creates a data channel; a negotiated one needs its `id`. */
  createDataChannel(label: string, init: DataChannelInit = {}): DataChannel {
    this.#assertOpen();
    const negotiated = init.negotiated ?? false;
    // A negotiated channel on a live association opens inside werift's
    // createDataChannel; its onopen must wait until the caller has the
    // channel and has set the handler.
    return this.dispatch.hold(() => {
      let channel: RTCDataChannel;
      try {
        channel = this.#pc.createDataChannel(label, {
          negotiated,
          ...(negotiated ? { id: init.id } : {}),
        });
      } catch (error) {
        throw new P2prtcError(
          "ERR_DATA_CHANNEL",
          `werift refused the data channel: ${messageOf(error)}`,
          { cause: error },
        );
      }
      return this.#adopt(channel);
    });
  }

  /** Creates an offer without applying it. */
  async createOffer(): Promise<SessionDescription> {
    this.#assertOpen();
    await this.#certificate;
    const offer = await this.#pc.createOffer();
    return { type: "offer", sdp: offer.sdp };
  }

  /** Creates an answer to the applied remote offer without applying it. */
  async createAnswer(): Promise<SessionDescription> {
    this.#assertOpen();
    await this.#certificate;
    const answer = await this.#pc.createAnswer();
    return { type: "answer", sdp: answer.sdp };
  }

  /**
   * Applies a local description and gathers candidates (they are reported
   * before this resolves). ICE credentials come from `credentials`, or from
   * the SDP if the caller changed them there.
   */
  async setLocalDescription(
    description: SessionDescription,
    credentials?: IceCredentials,
  ): Promise<void> {
    this.#assertOpen();
    await this.#certificate;
    const agents = this.#iceAgents();
    let sdp = description.sdp;
    const inSdp = findIceCredentials(sdp);
    const own = agents[0]
      ? { ufrag: agents[0].localUsername, pwd: agents[0].localPassword }
      : undefined;
    // A caller may also munge the SDP text itself, as browsers require. werift
    // takes its ICE credentials from its agent, not from the SDP, and rejects
    // an offer that differs from the one it made, so the credentials go to
    // the agent and werift gets its own text back.
    const wanted = credentials ??
      (inSdp && own && !sameCredentials(inSdp, own) ? inSdp : undefined);
    if (wanted) {
      assertIceCredentials(wanted);
      if (own && inSdp) sdp = replaceIceCredentials(sdp, own);
      for (const agent of agents) setIceCredentials(agent, wanted);
    }
    if (this.#suppressStun) {
      for (const agent of agents) agent.stunServer = undefined;
    }
    try {
      await this.#pc.setLocalDescription({ type: description.type, sdp });
    } catch (error) {
      throw invalidDescription("local", description.type, error);
    }
    this.#watchTransports();
  }

  /** Applies the remote description, then the candidates held for it. */
  async setRemoteDescription(description: SessionDescription): Promise<void> {
    this.#assertOpen();
    const sdp = this.#mdns
      ? description.sdp
      : dropMdnsCandidates(description.sdp);
    try {
      await this.#pc.setRemoteDescription({ type: description.type, sdp });
    } catch (error) {
      throw invalidDescription("remote", description.type, error);
    }
    this.#watchTransports();
    this.#remoteApplied = true;
    // An end-of-candidates marker that overtook a candidate in signalling
    // would make werift ignore that candidate; markers go last.
    const held = [
      ...this.#heldCandidates.filter((c) => c.candidate !== ""),
      ...this.#heldCandidates.filter((c) => c.candidate === ""),
    ];
    this.#heldCandidates = [];
    for (const candidate of held) {
      // Whoever sent these has long been told they were accepted; a bad one
      // is dropped as a browser would drop an unusable candidate.
      await this.#applyCandidate(candidate).catch(() => {});
    }
  }

  /** Adds a remote candidate, or holds it until the remote description. */
  async addIceCandidate(candidate: IceCandidate): Promise<void> {
    // Trickled candidates race with close(); after it they are moot.
    if (this.#closed) return;
    if (!this.#mdns && isMdnsCandidate(candidate.candidate)) return;
    if (!this.#remoteApplied) {
      this.#heldCandidates.push(candidate);
      return;
    }
    try {
      await this.#applyCandidate(candidate);
    } catch (error) {
      throw new P2prtcError(
        "ERR_INVALID_CANDIDATE",
        `werift refused the candidate: ${messageOf(error)}`,
        { cause: error },
      );
    }
  }

  /** The sha-256 digest of the local certificate. */
  async localFingerprint(): Promise<CertificateFingerprint> {
    const certificate = await this.#certificate;
    const sha256 = certificate.getFingerprints().find((f) =>
      f.algorithm.toLowerCase() === "sha-256"
    );
    if (!sha256) {
      throw new P2prtcError(
        "ERR_NO_FINGERPRINT",
        "werift gave no sha-256 fingerprint for the local certificate",
      );
    }
    return fingerprintFromHex(sha256.value);
  }

  /** The sha-256 digest of the certificate the peer presented; kept after close. */
  remoteFingerprint(): CertificateFingerprint | null {
    this.#keepRemoteFingerprint();
    const fingerprint = this.#remoteFingerprint;
    return fingerprint &&
      { algorithm: fingerprint.algorithm, digest: fingerprint.digest.slice() };
  }

  /** Closes the connection and its channels; their events follow. */
  close(): void {
    this.dispatch.hold(() => this.#teardown());
  }

  /** A channel of this connection has delivered `onclose`. */
  channelFinished(channel: WeriftDataChannel): void {
    if (this.#channels.delete(channel)) this.#handles.add("dataChannels", -1);
  }

  #assertOpen(): void {
    if (this.#closed) {
      throw new P2prtcError(
        "ERR_PEER_CONNECTION_CLOSED",
        "the peer connection is closed",
      );
    }
  }

  #adopt(channel: RTCDataChannel): WeriftDataChannel {
    const wrapped = new WeriftDataChannel(channel, this);
    this.#channels.add(wrapped);
    this.#handles.add("dataChannels", 1);
    return wrapped;
  }

  #subscribe(): void {
    const pc = this.#pc;
    const subscriptions = [
      pc.connectionStateChange.subscribe((state) => {
        if (state === "connected") {
          this.#watchSctp();
          this.#keepRemoteFingerprint();
        }
        this.dispatch.post(() => this.#deliverState(state));
        // Nothing brings a failed werift connection back (the seam has no
        // ICE restart); like libdatachannel, close it so its channels close
        // and its sockets and timers go.
        if (state === "failed") this.dispatch.post(() => this.#teardown());
      }),
      pc.onIceCandidate.subscribe((candidate) => {
        const init = candidate?.toJSON();
        this.dispatch.post(() => {
          if (this.#closed) return;
          this.onicecandidate?.(
            init
              ? {
                candidate: init.candidate,
                sdpMid: init.sdpMid ?? null,
                sdpMLineIndex: init.sdpMLineIndex ?? null,
                usernameFragment: init.usernameFragment ?? null,
              }
              : null,
          );
        });
      }),
      pc.onDataChannel.subscribe((channel) => {
        if (this.#closed) return;
        // Adopt at once: werift opens the channel right after this event,
        // and the wrapper must be listening by then.
        const wrapped = this.#adopt(channel);
        this.dispatch.post(() => {
          if (!this.#closed) this.ondatachannel?.(wrapped);
        });
      }),
    ];
    for (const s of subscriptions) this.#unsubscribe.push(s.unSubscribe);
  }

  #deliverState(state: PeerConnectionState): void {
    if (this.#closed || state === this.#state) return;
    this.#state = state;
    this.onconnectionstatechange?.(state);
  }

  /**
   * werift leaves the connection "connected" when the peer aborts the SCTP
   * association or closes DTLS; only the channels close. Like libdatachannel,
   * report it as disconnected and tear the connection down.
   */
  #watchSctp(): void {
    const sctp = this.#pc.sctpTransport?.sctp as unknown as
      | SctpAssociation
      | undefined;
    if (!sctp || sctp === this.#sctpWatched) return;
    this.#sctpWatched = sctp;
    const subscription = sctp.stateChanged.closed.subscribe(() => {
      if (this.#closed) return;
      this.dispatch.post(() => this.#deliverState("disconnected"));
      this.dispatch.post(() => this.#teardown());
    });
    this.#unsubscribe.push(subscription.unSubscribe);
  }

  /** Called after each description werift applies, before DTLS can start. */
  #watchTransports(): void {
    for (const transport of this.#pc.dtlsTransports) {
      if (!this.#flights.watch(transport)) continue;
      closeNotifyOnStop(transport);
      if (!this.#verifyFingerprint) {
        // werift checks the peer's certificate against the remote SDP in
        // this method, after the handshake, and has no option to skip it.
        (transport as unknown as FingerprintCheck)
          .verifyRemoteCertificateFingerprint = () => {};
      }
    }
    this.#prepareSctp();
  }

  /**
   * Fixes werift's SCTP before its first packet: the receive path, timers
   * and packets (see `sctp.ts`), stream resets (`stream_resets.ts`), and two
   * things werift bases on the ICE role.
   *
   * The INIT window: werift's SCTP answers an INIT as a server until
   * `start()` tells it its role, which happens only once werift has seen DTLS
   * connect. A peer that sends its INIT at once (libdatachannel does, as the
   * DTLS server) catches an ICE-controlling werift in that window: werift
   * answers it, then starts as a client, sends its own INIT and ignores the
   * COOKIE ECHO that follows, and the association never comes up. Telling it
   * its role as soon as ICE knows it closes the window.
   *
   * Stream id parity: RFC 8832 gives even ids to the DTLS client and odd ids
   * to the DTLS server; werift gives odd ids to the ICE-controlling side,
   * which is the DTLS client when the answer says `a=setup:passive` (as
   * libdatachannel's does). Both sides would then open channels on odd ids
   * and the peer ignores ours. The parity is corrected once `start()` has
   * set it, before any channel is given an id.
   */
  #prepareSctp(): void {
    const transport = this.#pc.sctpTransport;
    const sctp = transport?.sctp as unknown as SctpAssociation | undefined;
    const dtls = transport?.dtlsTransport;
    if (!transport || !sctp || !dtls || sctp.started) return;
    const role = dtls.iceTransport.role;
    if (role !== "unknown") sctp.isServer = role !== "controlling";
    if (this.#sctpPrepared === sctp) return;
    this.#sctpPrepared = sctp;
    guardReceive(sctp, transport.dataChannels);
    deliverReordered(sctp);
    guardTimerStarts(sctp);
    startRtoAtOneSecond(sctp);
    ackBeforeReset(sctp, (fn) => this.dispatch.hold(fn));
    resetOnce(sctp);
    holdReopenedStreams(sctp, transport.dataChannels);
    bundleData(sctp);
    const subscription = sctp.stateChanged.connecting.subscribe(() => {
      // `start()` has resolved an "auto" DTLS role by now.
      (transport as unknown as SctpTransportInternals).dataChannelId =
        dtls.role === "client" ? 0 : 1;
    });
    this.#unsubscribe.push(subscription.unSubscribe);
  }

  /**
   * Remembers the peer's certificate digest once DTLS has verified it, so it
   * is still known after close, when werift has dropped its transports.
   */
  #keepRemoteFingerprint(): void {
    if (this.#remoteFingerprint) return;
    for (const transport of this.#pc.dtlsTransports) {
      const socket = transport.dtls as unknown as DtlsSocket | undefined;
      const der = socket?.remoteCertificate;
      if (transport.state === "connected" && der) {
        this.#remoteFingerprint = {
          algorithm: "sha-256",
          digest: new Uint8Array(createHash("sha256").update(der).digest()),
        };
        return;
      }
    }
  }

  #iceAgents(): IceAgent[] {
    return this.#pc.iceTransports.map((t) =>
      t.connection as unknown as IceAgent
    );
  }

  async #applyCandidate(candidate: IceCandidate): Promise<void> {
    const sdpMid = candidate.sdpMid ?? undefined;
    // werift insists on one of the two; libp2p connections have one m-line.
    const sdpMLineIndex = candidate.sdpMLineIndex ??
      (sdpMid === undefined ? 0 : undefined);
    await this.#pc.addIceCandidate({
      candidate: candidate.candidate,
      sdpMid,
      sdpMLineIndex,
      usernameFragment: candidate.usernameFragment ?? undefined,
    });
  }

  /** Closes everything once, from close() or when the peer went away. */
  #teardown(): void {
    if (this.#closed) return;
    this.#keepRemoteFingerprint();
    this.#closed = true;
    this.#state = "closed";
    this.#heldCandidates = [];
    for (const unsubscribe of this.#unsubscribe) unsubscribe();
    this.#flights.stop();
    for (const channel of this.#channels) {
      this.dispatch.post(() => channel.finish());
    }
    this.dispatch.post(() => {
      const handler = this.onconnectionstatechange;
      this.ondatachannel = null;
      this.onicecandidate = null;
      this.onconnectionstatechange = null;
      handler?.("closed");
    });
    // Certificate generation may still be running; it is work in flight too.
    Promise.allSettled([this.#certificate, this.#pc.close()])
      .then(() => this.#flights.settled())
      .finally(() => {
        // Anything not finished yet went down with the connection.
        for (const channel of this.#channels) channel.finish();
        this.#handles.add("peerConnections", -1);
      });
  }
}

function toDescription(
  description: { type: string; sdp: string } | null | undefined,
): SessionDescription | null {
  if (!description) return null;
  if (description.type !== "offer" && description.type !== "answer") {
    return null;
  }
  return { type: description.type, sdp: description.sdp };
}

function invalidDescription(
  side: "local" | "remote",
  type: string,
  error: unknown,
): P2prtcError {
  return new P2prtcError(
    "ERR_INVALID_DESCRIPTION",
    `werift refused the ${side} ${type}: ${messageOf(error)}`,
    { cause: error },
  );
}

function setIceCredentials(
  agent: IceAgent,
  { ufrag, pwd }: IceCredentials,
): void {
  // werift answers checks for any ufrag it has ever used; forget the old one
  // so only the caller's credentials work.
  delete agent.userHistory[agent.localUsername];
  agent.localUsername = ufrag;
  agent.localPassword = pwd;
  agent.userHistory[ufrag] = pwd;
}
