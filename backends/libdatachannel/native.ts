/**
 * The one place that touches `node-datachannel` as a whole: loading it, the
 * process-wide count of live native peer connections, and the call to its
 * `cleanup()` once none is left.
 *
 * The addon is loaded on demand, not by a static import. node-datachannel
 * keeps its DataChannel constructor in a C++ static filled by the first V8
 * isolate that loads it; if a second isolate in the same process (a Worker,
 * another test file of the same `deno test` run, a doc-test snippet) then
 * creates or receives a data channel, Deno panics. Loading on demand means
 * merely importing this backend poisons nothing.
 *
 * Internal to the libdatachannel backend; nothing here is exported from the
 * package.
 *
 * @module
 */

import { P2prtcError } from "../../core/errors.ts";
import type {
  DataChannel as NdcDataChannel,
  PeerConnection as NdcPeerConnection,
  RtcConfig as NdcRtcConfig,
} from "node-datachannel";

/** A native peer connection of `node-datachannel`. */
export type NativePeerConnection = NdcPeerConnection;
/** A native data channel of `node-datachannel`. */
export type NativeDataChannel = NdcDataChannel;
/** The configuration of a native peer connection. */
export type NativeConfig = NdcRtcConfig;

type NativeModule = typeof import("node-datachannel");

let loading: Promise<NativeModule> | undefined;
let native: NativeModule | undefined;

/** Loads the addon once; later calls share the first load. */
export function loadNative(): Promise<void> {
  loading ??= import("node-datachannel");
  return loading.then((module) => {
    native = module;
  });
}

// Counted across every backend instance in the process: `cleanup()` stops
// libdatachannel for all of them at once, so only the process-wide count may
// decide when it is safe.
let live = 0;

/** Creates a native peer connection and counts it as live. */
export function openNative(config: NativeConfig): NativePeerConnection {
  if (native === undefined) {
    throw new P2prtcError(
      "ERR_NOT_LOADED",
      "node-datachannel is not loaded: make the backend with `await libdatachannel()`",
    );
  }
  const connection = new native.PeerConnection("p2prtc", config);
  live++;
  return connection;
}

/**
 * Forgets a native peer connection whose `closed` state has been delivered.
 * When it was the last one and `stop` is set, stops libdatachannel so that
 * its callbacks no longer keep the process alive.
 *
 * Call it from a task of its own, never from inside a native callback:
 * `cleanup()` frees the callbacks of every wrapper, including the one that
 * would be running.
 */
export function releaseNative(stop: boolean): void {
  live--;
  if (live === 0 && stop) {
    // Every native peer connection has delivered `closed`, so this only
    // frees callbacks and joins libdatachannel's threads. A later
    // `new PeerConnection` starts libdatachannel again.
    native?.cleanup();
  }
}

/** A native WebRTC-Direct UDP listener of `node-datachannel`. */
export type NativeUdpMuxListener = import("node-datachannel").IceUdpMuxListener;

/**
 * Binds a native `IceUdpMuxListener` and counts it as live, like a peer
 * connection: `cleanup()` would stop it, so it must not run while the
 * listener is open.
 */
export function openNativeListener(
  port: number,
  address: string,
): NativeUdpMuxListener {
  if (native === undefined) {
    throw new P2prtcError(
      "ERR_NOT_LOADED",
      "node-datachannel is not loaded: make the backend with `await libdatachannel()`",
    );
  }
  const listener = new native.IceUdpMuxListener(port, address);
  live++;
  return listener;
}

/**
 * Stops a native listener and forgets it; like {@linkcode releaseNative},
 * stops libdatachannel when nothing else is live and `stop` is set. Call it
 * from a task of its own, never from inside a native callback.
 */
export function releaseNativeListener(
  listener: NativeUdpMuxListener,
  stop: boolean,
): void {
  try {
    listener.stop();
  } catch {
    // Already stopped (by an earlier cleanup()).
  }
  releaseNative(stop);
}
