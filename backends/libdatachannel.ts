/**
 * A {@linkcode PeerConnectionBackend} over [libdatachannel](https://github.com/paullouisageneau/libdatachannel),
 * through the native API of npm `node-datachannel` 0.33 (not its W3C
 * polyfill): the fastest WebRTC stack for Deno here.
 *
 * What it does: offers and answers with trickled candidates, ICE credentials
 * chosen by the caller (WebRTC-Direct dialing), negotiated and in-band data
 * channels, binary messages up to 16384 bytes (`a=max-message-size:16384`,
 * as libp2p asks), both DTLS fingerprints, `bindAddress`, a PEM
 * `certificate`, and WebRTC-Direct listening (`listenDirect`: one UDP port
 * shared by ICE agents created with `iceUdpMuxPort`, fingerprint checks
 * off with `disableFingerprintVerification`).
 *
 * Permissions: `--allow-read --allow-ffi` (read to find the prebuilt addon,
 * ffi to load it). The native code then has the network access of the whole
 * process, whatever `--allow-net` says: Deno's permissions do not reach
 * inside a native addon. No STUN or TURN server is contacted unless one is
 * given in `iceServers`; without `bindAddress`, host candidates are gathered
 * on every interface.
 *
 * Lifetime: node-datachannel's callbacks keep the process alive until its
 * `cleanup()` runs. This backend calls it by itself when the last native
 * peer connection of the process has delivered its `closed` state (in a
 * task of its own, after the channels' `onclose`), so `deno run` exits once
 * everything is closed. A later peer connection starts libdatachannel again.
 * `cleanup()` stops every node-datachannel object of the process, so pass
 * `{ cleanup: false }` if other code in the process uses node-datachannel
 * directly, and call `cleanup()` yourself at the end.
 *
 * How it differs from the W3C API underneath (invisible through the seam):
 * libdatachannel generates a description and applies it in one step, and
 * takes ICE credentials only at that moment. `createOffer`/`createAnswer`
 * therefore generate natively but show nothing until `setLocalDescription`;
 * credentials other than the generated ones make it recreate the native
 * connection first, which the peer never sees. Offers need a data channel
 * to exist (libdatachannel has nothing to negotiate otherwise).
 *
 * Two libdatachannel races shape how connections should be set up (see
 * `libdatachannel/peer_connection.ts`): its `setRemoteDescription` hands the
 * description to the ICE agent before storing it, so an offerer whose ICE
 * completes inside that call checks the peer's DTLS certificate against
 * nothing ("certificate verify failed"); and a ClientHello that arrives
 * before DTLS is ready waits for the client's one-second resend. Both are
 * avoided when the offerer's candidates reach the answerer only after the
 * offerer has applied the answer, which is what the core's `/webrtc`
 * negotiation does; this example trickles at once, as a quick two-peer
 * setup on one machine may.
 *
 * @example Two peer connections on loopback
 * ```ts
 * import { libdatachannel } from "./libdatachannel.ts";
 *
 * const backend = await libdatachannel();
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
  DirectListenOptions,
  DirectUdpListener,
  HandleCount,
  PeerConnection,
  PeerConnectionBackend,
  PeerConnectionOptions,
} from "../core/backend.ts";
import { TimeoutError } from "../core/errors.ts";
import { MAX_MESSAGE_SIZE } from "../core/sdp.ts";
import { toNativeIceServers } from "./libdatachannel/ice_servers.ts";
import { loadNative } from "./libdatachannel/native.ts";
import {
  type ConnectionOwner,
  LibdatachannelPeerConnection,
} from "./libdatachannel/peer_connection.ts";
import {
  LibdatachannelUdpListener,
  type ListenerOwner,
} from "./libdatachannel/udp_mux.ts";

/** Options for {@linkcode libdatachannel}. */
export interface LibdatachannelOptions {
  /**
   * Call node-datachannel's `cleanup()` when the last peer connection of the
   * process is closed, so that the process can exit. Default: `true`. Turn
   * it off only if other code in the process uses node-datachannel.
   */
  cleanup?: boolean;
}

/**
 * The libdatachannel backend. Create it with {@linkcode libdatachannel},
 * which loads the native addon first.
 */
export class LibdatachannelBackend implements PeerConnectionBackend {
  /** `"libdatachannel"`. */
  readonly name = "libdatachannel";
  /** It can dial and listen on WebRTC-Direct. */
  readonly capabilities: BackendCapabilities = {
    directDial: true,
    directListen: true,
  };
  #udpListeners = 0;
  #listenerOwner: ListenerOwner;
  /** Open peer connections per shared UDP port, and who waits for none. */
  #muxUsers = new Map<number, number>();
  #muxIdle = new Map<number, (() => void)[]>();

  #counts: HandleCount = { peerConnections: 0, dataChannels: 0 };
  #idle = new Set<() => void>();
  #owner: ConnectionOwner;

  /**
   * Use {@linkcode libdatachannel} instead: this constructor does not load
   * the addon, and `createPeerConnection` throws until it is loaded.
   */
  constructor(options: LibdatachannelOptions = {}) {
    const counts = this.#counts;
    const waiters = this.#idle;
    // deno-lint-ignore no-this-alias
    const self = this;
    this.#owner = {
      stopWhenIdle: options.cleanup ?? true,
      count(kind, delta) {
        counts[kind] += delta;
        if (
          counts.peerConnections === 0 && counts.dataChannels === 0 &&
          self.#udpListeners === 0
        ) {
          for (const wake of [...waiters]) wake();
        }
      },
    };
    this.#listenerOwner = {
      stopWhenIdle: options.cleanup ?? true,
      count(delta) {
        self.#udpListeners += delta;
        if (
          counts.peerConnections === 0 && counts.dataChannels === 0 &&
          self.#udpListeners === 0
        ) {
          for (const wake of [...waiters]) wake();
        }
      },
      afterMuxUsers(port, then) {
        if ((self.#muxUsers.get(port) ?? 0) === 0) {
          setTimeout(then, 0);
          return;
        }
        const waiting = self.#muxIdle.get(port) ?? [];
        waiting.push(then);
        self.#muxIdle.set(port, waiting);
      },
    };
  }

  /** The owner of a peer connection sharing UDP port `port`. */
  #muxOwner(port: number): ConnectionOwner {
    const base = this.#owner;
    const users = this.#muxUsers;
    const idle = this.#muxIdle;
    return {
      stopWhenIdle: base.stopWhenIdle,
      count(kind, delta) {
        if (kind === "peerConnections") {
          const left = (users.get(port) ?? 0) + delta;
          if (left > 0) users.set(port, left);
          else users.delete(port);
          const waiting = left > 0 ? undefined : idle.get(port);
          if (waiting !== undefined) {
            idle.delete(port);
            // After this connection's own release, outside its callback.
            setTimeout(() => waiting.forEach((then) => then()), 0);
          }
        }
        base.count(kind, delta);
      },
    };
  }

  /**
   * Binds a WebRTC-Direct UDP port shared by the peer connections created
   * with `iceUdpMuxPort` set to it. Port `0` picks a free port.
   *
   * @throws {import("../core/errors.ts").ListenFailedError} if it cannot bind.
   */
  listenDirect(options: DirectListenOptions): Promise<DirectUdpListener> {
    return LibdatachannelUdpListener.listen(options, this.#listenerOwner);
  }

  /**
   * Creates a peer connection. ICE servers default to none; `bindAddress`
   * limits host candidates to one local address.
   */
  createPeerConnection(options: PeerConnectionOptions = {}): PeerConnection {
    const certificate = options.certificate;
    return new LibdatachannelPeerConnection(
      options.iceUdpMuxPort === undefined
        ? this.#owner
        : this.#muxOwner(options.iceUdpMuxPort),
      {
        iceServers: toNativeIceServers(options.iceServers ?? []),
        ...(options.bindAddress === undefined
          ? {}
          : { bindAddress: options.bindAddress }),
        maxMessageSize: MAX_MESSAGE_SIZE,
        // WebRTC-Direct listening: share the listener's UDP port.
        ...(options.iceUdpMuxPort === undefined ? {} : {
          enableIceUdpMux: true,
          portRangeBegin: options.iceUdpMuxPort,
          portRangeEnd: options.iceUdpMuxPort,
        }),
        ...(options.disableFingerprintVerification === true
          ? { disableFingerprintVerification: true }
          : {}),
        // Descriptions are generated only when the seam asks for them.
        disableAutoNegotiation: true,
        // libdatachannel takes PEM text as well as file names here.
        ...(certificate === undefined ? {} : {
          certificatePemFile: certificate.certificate,
          keyPemFile: certificate.privateKey,
        }),
      },
      certificate,
    );
  }

  /**
   * Peer connections not yet closed and data channels that have not yet
   * delivered `onclose`. A peer connection counts until libdatachannel has
   * delivered its `closed` state and, if it was the last, `cleanup()` ran.
   */
  openHandles(): HandleCount {
    return this.#udpListeners === 0
      ? { ...this.#counts }
      : { ...this.#counts, udpListeners: this.#udpListeners };
  }

  /**
   * Resolves once {@linkcode LibdatachannelBackend.openHandles} is zero,
   * which also means libdatachannel has been stopped if nothing else in the
   * process uses it. Rejects with {@linkcode TimeoutError} if `signal`
   * aborts first.
   */
  idle(signal?: AbortSignal): Promise<void> {
    const { peerConnections, dataChannels } = this.#counts;
    if (
      peerConnections === 0 && dataChannels === 0 && this.#udpListeners === 0
    ) {
      return Promise.resolve();
    }
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const abort = () => {
      this.#idle.delete(wake);
      const { peerConnections, dataChannels } = this.#counts;
      reject(
        new TimeoutError(
          `libdatachannel still has ${peerConnections} peer connection(s) and ${dataChannels} data channel(s) open`,
        ),
      );
    };
    const wake = () => {
      this.#idle.delete(wake);
      signal?.removeEventListener("abort", abort);
      resolve();
    };
    if (signal?.aborted) {
      abort();
      return promise;
    }
    this.#idle.add(wake);
    signal?.addEventListener("abort", abort, { once: true });
    return promise;
  }
}

/**
 * Loads node-datachannel's native addon (once per process) and makes a
 * libdatachannel backend.
 *
 * Only one V8 isolate per process may use the addon: node-datachannel keeps
 * per-isolate state in C++ statics, and Deno panics when a second isolate (a
 * Worker, or another test file in the same `deno test` run) creates or
 * receives a data channel. Importing this module does not load the addon;
 * calling this function does.
 *
 * @example
 * ```ts
 * import { libdatachannel } from "./libdatachannel.ts";
 *
 * const backend = await libdatachannel();
 * console.log(backend.name); // "libdatachannel"
 * ```
 */
export async function libdatachannel(
  options?: LibdatachannelOptions,
): Promise<LibdatachannelBackend> {
  await loadNative();
  return new LibdatachannelBackend(options);
}
