/**
 * WebRTC-Direct listening for the libdatachannel backend: one UDP port
 * shared by every listener-side peer connection (libjuice's "UDP mux"), with
 * the first STUN Binding request of each unknown ICE session reported to the
 * core.
 *
 * node-datachannel quirks handled here:
 *
 * - `new IceUdpMuxListener(0, host)` does not pick a free port (its `port()`
 *   stays `0`), so port `0` is resolved first by binding and releasing a
 *   `node:dgram` socket. Another process may take the port in between.
 * - `cleanup()` stops every listener of the process, so listeners are
 *   counted with the live peer connections (see `native.ts`).
 * - The native listener is stopped only once the last peer connection
 *   sharing its port has been released, so connections accepted before
 *   `close()` keep their socket and no ICE agent is torn down under a
 *   stopped mux. (Whether libjuice would cut such connections off was not
 *   measured.) A process that dies with a listener and a peer connection
 *   still open (an uncaught error in a test) was seen to end in SIGSEGV.
 * - The request gives the two USERNAME halves separately: `localUfrag`
 *   (server) and `ufrag` (client).
 *
 * Internal to the libdatachannel backend.
 *
 * @module
 */

import type {
  DirectListenOptions,
  DirectUdpListener,
} from "../../core/backend.ts";
import { ListenFailedError } from "../../core/errors.ts";
import {
  type NativeUdpMuxListener,
  openNativeListener,
  releaseNativeListener,
} from "./native.ts";

/** What a listener reports to the backend that made it. */
export interface ListenerOwner {
  /** Whether to stop libdatachannel when nothing is left open. */
  readonly stopWhenIdle: boolean;
  /** A listener was opened (`+1`) or closed (`-1`). */
  count(delta: 1 | -1): void;
  /**
   * Runs `then` (in a task of its own) once no peer connection created with
   * `iceUdpMuxPort: port` is left, so the mux is not stopped under a live
   * ICE agent.
   */
  afterMuxUsers(port: number, then: () => void): void;
}

/** Binds and releases a UDP socket to find a free port on `host`. */
async function freePort(host: string): Promise<number> {
  const dgram = await import("node:dgram");
  const socket = dgram.createSocket(host.includes(":") ? "udp6" : "udp4");
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(0, host, () => resolve());
    });
    return socket.address().port;
  } finally {
    await new Promise<void>((resolve) => socket.close(() => resolve()));
  }
}

/** A bound native listener; see the module documentation. */
export class LibdatachannelUdpListener implements DirectUdpListener {
  /** The bound IP. */
  readonly host: string;
  /** The bound UDP port. */
  readonly port: number;
  readonly #native: NativeUdpMuxListener;
  readonly #owner: ListenerOwner;
  #closed = false;

  private constructor(
    host: string,
    port: number,
    native: NativeUdpMuxListener,
    owner: ListenerOwner,
  ) {
    this.host = host;
    this.port = port;
    this.#native = native;
    this.#owner = owner;
  }

  /** Binds `options.host:options.port` (a free port for `0`). */
  static async listen(
    options: DirectListenOptions,
    owner: ListenerOwner,
  ): Promise<LibdatachannelUdpListener> {
    const { host, onStunRequest } = options;
    const port = options.port === 0 ? await freePort(host) : options.port;
    let native: NativeUdpMuxListener;
    try {
      native = openNativeListener(port, host);
    } catch (error) {
      throw new ListenFailedError(
        `libdatachannel could not listen on ${host} UDP port ${port}: ${
          error instanceof Error ? error.message : String(error)
        }`,
        { cause: error },
      );
    }
    const listener = new LibdatachannelUdpListener(host, port, native, owner);
    owner.count(1);
    native.onUnhandledStunRequest((request) => {
      // Copied out and delivered in a task of its own: the core may close
      // the listener (and so stop libdatachannel) in its handler.
      const { localUfrag, ufrag, host: remoteHost, port: remotePort } = request;
      setTimeout(() => {
        if (listener.#closed) return;
        onStunRequest({
          serverUfrag: String(localUfrag ?? ""),
          clientUfrag: String(ufrag ?? ""),
          remoteHost: String(remoteHost ?? ""),
          remotePort: Number(remotePort),
        });
      }, 0);
    });
    return listener;
  }

  /**
   * Stops reporting requests at once; stops the native listener and
   * releases the port once the last peer connection sharing it has closed
   * (until then it still counts in `openHandles().udpListeners`).
   * Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#owner.afterMuxUsers(this.port, () => {
      releaseNativeListener(this.#native, this.#owner.stopWhenIdle);
      this.#owner.count(-1);
    });
  }
}
