/**
 * The code a browser test page runs: the browser backend and a small remote
 * control for it, `globalThis.p2prtcPage`, which the Deno test process
 * drives through playwright's `page.evaluate`.
 *
 * Objects stay in the page and are named by numbers; only descriptions,
 * candidates, sizes and seeds cross. Events go back through the
 * `p2prtcEmit` binding the harness exposes.
 *
 * It is bundled for the browser at test time (`bundle.ts`); it is not
 * shipped.
 *
 * @module
 */

import { createBrowserBackend } from "../../backends/browser.ts";
import type {
  DataChannel,
  DataChannelInit,
  HandleCount,
  IceCandidate,
  IceCredentials,
  PeerConnection,
  SessionDescription,
} from "../../core/backend.ts";
import { Inbox, type InboxSummary, sendPattern, toHex } from "./transfer.ts";

/** An event the page reports to the test process. */
export type PageEvent =
  | { type: "candidate"; peer: number; candidate: IceCandidate | null }
  | {
    type: "datachannel";
    peer: number;
    channel: number;
    label: string;
    id: number | null;
  }
  | { type: "state"; peer: number; state: string };

/** Both DTLS fingerprints of a peer connection, as lowercase hex. */
export interface FingerprintsHex {
  /** The local certificate's. */
  local: string;
  /** The certificate the peer presented, once DTLS is up. */
  remote: string | null;
}

/** What the test process can ask of the page. Peers and channels are numbers. */
export interface PageApi {
  /** The backend's `capabilities.directDial`, as probed. */
  directDial(): boolean;
  /** A new peer connection whose candidates are filtered to 127.0.0.1. */
  createPeer(): number;
  /** `createOffer` on a peer. */
  createOffer(peer: number): Promise<SessionDescription>;
  /** `createAnswer` on a peer. */
  createAnswer(peer: number): Promise<SessionDescription>;
  /** `setLocalDescription` on a peer. */
  setLocalDescription(
    peer: number,
    description: SessionDescription,
    credentials?: IceCredentials,
  ): Promise<void>;
  /** A peer's applied local description (credentials included). */
  localDescription(peer: number): SessionDescription | null;
  /** `setRemoteDescription` on a peer. */
  setRemoteDescription(
    peer: number,
    description: SessionDescription,
  ): Promise<void>;
  /** `addIceCandidate` on a peer. */
  addIceCandidate(peer: number, candidate: IceCandidate): Promise<void>;
  /** `createDataChannel` on a peer; the channel's messages are collected. */
  createDataChannel(
    peer: number,
    label: string,
    init?: DataChannelInit,
  ): number;
  /** Waits for a channel to open; gives its SCTP id and label. */
  waitOpen(
    channel: number,
    timeoutMs: number,
  ): Promise<{ id: number | null; label: string }>;
  /** Sends a seeded pattern, one message per size, with backpressure. */
  sendPattern(channel: number, sizes: number[], seed: number): Promise<void>;
  /** Waits for a seeded pattern and checks it byte for byte. */
  expectPattern(
    channel: number,
    sizes: number[],
    seed: number,
    timeoutMs: number,
  ): Promise<InboxSummary>;
  /** Waits for a channel to close. */
  expectClose(channel: number, timeoutMs: number): Promise<void>;
  /** Closes a channel. */
  closeChannel(channel: number): void;
  /** Closes a peer connection. */
  closePeer(peer: number): void;
  /** Both fingerprints of a peer. */
  fingerprints(peer: number): Promise<FingerprintsHex>;
  /** A peer's connection state. */
  connectionState(peer: number): string;
  /** The backend's open handles. */
  handles(): HandleCount;
}

/** The globals this module reads and sets. */
interface PageGlobals {
  p2prtcEmit?: (event: PageEvent) => void;
  p2prtcPage?: PageApi;
}

const globals = globalThis as PageGlobals;
const emit = (event: PageEvent) => globals.p2prtcEmit?.(event);

const backend = await createBrowserBackend();
const peers = new Map<number, PeerConnection>();
const channels = new Map<
  number,
  { channel: DataChannel; inbox: Inbox; opened: Promise<void> }
>();
let lastId = 0;

function peerOf(peer: number): PeerConnection {
  const pc = peers.get(peer);
  if (pc === undefined) throw new Error(`no peer ${peer}`);
  return pc;
}

function channelOf(channel: number) {
  const entry = channels.get(channel);
  if (entry === undefined) throw new Error(`no channel ${channel}`);
  return entry;
}

/** Collects a channel's messages from now on, and notes when it opens. */
function track(channel: DataChannel): number {
  const handle = ++lastId;
  const inbox = new Inbox(channel);
  const { promise: opened, resolve } = Promise.withResolvers<void>();
  if (channel.readyState === "open") resolve();
  channel.onopen = () => resolve();
  channels.set(handle, { channel, inbox, opened });
  return handle;
}

function timeout<T>(promise: Promise<T>, ms: number, what: string) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

const api: PageApi = {
  directDial: () => backend.capabilities.directDial,
  createPeer() {
    const peer = ++lastId;
    const pc = backend.createPeerConnection({ bindAddress: "127.0.0.1" });
    pc.onicecandidate = (candidate) =>
      emit({ type: "candidate", peer, candidate });
    pc.ondatachannel = (channel) =>
      emit({
        type: "datachannel",
        peer,
        channel: track(channel),
        label: channel.label,
        id: channel.id,
      });
    pc.onconnectionstatechange = (state) =>
      emit({ type: "state", peer, state });
    peers.set(peer, pc);
    return peer;
  },
  createOffer: (peer) => peerOf(peer).createOffer(),
  createAnswer: (peer) => peerOf(peer).createAnswer(),
  setLocalDescription: (peer, description, credentials) =>
    peerOf(peer).setLocalDescription(description, credentials),
  localDescription: (peer) => peerOf(peer).localDescription,
  setRemoteDescription: (peer, description) =>
    peerOf(peer).setRemoteDescription(description),
  addIceCandidate: (peer, candidate) => peerOf(peer).addIceCandidate(candidate),
  createDataChannel: (peer, label, init) =>
    track(peerOf(peer).createDataChannel(label, init)),
  async waitOpen(channel, timeoutMs) {
    const entry = channelOf(channel);
    await timeout(entry.opened, timeoutMs, `channel ${channel} to open`);
    return { id: entry.channel.id, label: entry.channel.label };
  },
  sendPattern: (channel, sizes, seed) =>
    sendPattern(channelOf(channel).channel, sizes, seed),
  expectPattern: (channel, sizes, seed, timeoutMs) =>
    channelOf(channel).inbox.expectPattern(sizes, seed, timeoutMs),
  expectClose: (channel, timeoutMs) =>
    channelOf(channel).inbox.expectClose(timeoutMs),
  closeChannel: (channel) => channelOf(channel).channel.close(),
  closePeer: (peer) => peerOf(peer).close(),
  async fingerprints(peer) {
    const pc = peerOf(peer);
    const local = await pc.localFingerprint();
    const remote = pc.remoteFingerprint();
    return {
      local: toHex(local.digest),
      remote: remote && toHex(remote.digest),
    };
  },
  connectionState: (peer) => peerOf(peer).connectionState,
  handles: () => backend.openHandles(),
};

globals.p2prtcPage = api;
