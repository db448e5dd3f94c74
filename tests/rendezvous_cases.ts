/**
 * `/webrtc` through the WebSocket rendezvous on a real backend: two
 * transports meet on a rendezvous server on loopback, connect and echo
 * 1 MiB; and a peer that disconnects from the rendezvous in the middle of
 * the handshake fails both dials with typed errors and leaves no native
 * handle open on either side.
 *
 * Registered by each backend's test file (`werift_test.ts`, and
 * `rendezvous_native_cases.ts` through `native_test.ts`).
 *
 * @module
 */

import { ok, rejects, strictEqual } from "node:assert/strict";
import type { PeerConnectionBackend } from "../core/backend.ts";
import { P2prtcError } from "../core/errors.ts";
import type { WebRTCConnection } from "../core/connection.ts";
import { generateIdentity, type Identity } from "../core/identity.ts";
import type { SignalingChannel, SignalingMessage } from "../core/signaling.ts";
import { WebRTCTransport } from "../core/transport.ts";
import {
  PeerUnreachableError,
  RendezvousClient,
  RendezvousClosedError,
} from "../signaling/websocket.ts";
import { isLoopback } from "./conformance/connect.ts";
import { random, randomBytes } from "./random.ts";
import { startRendezvous, STEP_MS, until } from "./rendezvous_helpers.ts";
import { assertBytes, readAll, writeAndClose } from "./stream_helpers.ts";
import {
  type BackendPairMaker,
  backendPairTests,
} from "./peer_connection_helpers.ts";

const ECHO = "/echo/1.0.0";
const CONNECT = { candidateFilter: isLoopback, timeout: STEP_MS } as const;

/** Registers the rendezvous cases for `label`, with backends from `make`. */
export function rendezvousCases(
  label: string,
  make: BackendPairMaker,
  settle: (backends: PeerConnectionBackend[]) => Promise<void>,
): void {
  const test = backendPairTests(`rendezvous (${label})`, make, settle);

  test(
    "two transports meet on the WebSocket rendezvous, connect over /webrtc and echo 1 MiB",
    async (ba, bb) => {
      await using peers = await meet(ba, bb);
      const { ida, idb, ta, tb, alice, bob } = peers;
      tb.handle(ECHO, (stream) => stream.readable.pipeTo(stream.writable));
      const answered = answerNext(bob, tb);
      const conn = await ta.connect(alice.dial(idb.peerId), {
        ...CONNECT,
        remotePeer: idb.peerId,
        role: "offerer",
      });
      const inbound = await answered;
      strictEqual(conn.remotePeer.toString(), idb.peerId.toString());
      strictEqual(inbound.remotePeer.toString(), ida.peerId.toString());
      strictEqual(inbound.direction, "inbound");
      // The attempts end at both ends once the connection is up.
      await until(
        () => alice.attempts + bob.attempts === 0,
        "the attempts to end",
      );

      const stream = await conn.newStream(ECHO);
      const data = randomBytes(random(0x5e7), 1024 * 1024);
      const [, echoed] = await Promise.all([
        writeAndClose(stream, data),
        readAll(stream.readable),
      ]);
      assertBytes(echoed, data);
      // The connection no longer needs the rendezvous.
      await alice.close();
      await bob.close();
      const again = await conn.newStream(ECHO);
      const small = randomBytes(random(0x5e8), 1000);
      const [, back] = await Promise.all([
        writeAndClose(again, small),
        readAll(again.readable),
      ]);
      assertBytes(back, small);
    },
  );

  for (const leaver of ["answerer", "offerer"] as const) {
    test(
      `the ${leaver} disconnecting from the rendezvous mid-handshake fails both dials and leaves no handle behind`,
      async (ba, bb) => {
        await using peers = await meet(ba, bb);
        const { idb, ta, tb, alice, bob } = peers;
        // Peer connections open when the leaver goes: both sides had one.
        let openAtLeave = -1;
        const leave = (client: RendezvousClient) => () => {
          openAtLeave = ba.openHandles().peerConnections +
            (bb === ba ? 0 : bb.openHandles().peerConnections);
          return client.close();
        };
        // The answerer goes once the offer is in: its peer connection
        // exists, the offerer's has sent its offer, nothing is answered.
        const answering = answerNext(
          bob,
          tb,
          (channel) =>
            leaver === "answerer"
              ? onReceive(channel, "offer", leave(bob))
              : channel,
        );
        // The offerer goes right after sending its offer.
        const dialed = alice.dial(idb.peerId);
        const watched = leaver === "offerer"
          ? onSend(dialed, "offer", leave(alice))
          : dialed;
        const offering = ta.connect(watched, {
          ...CONNECT,
          remotePeer: idb.peerId,
          role: "offerer",
        });
        const stayer = leaver === "answerer" ? offering : answering;
        const goner = leaver === "answerer" ? answering : offering;
        // The one that stayed learns the other is gone from the server.
        await rejects(
          stayer,
          (e: unknown) =>
            e instanceof PeerUnreachableError && e.reason === "disconnected",
        );
        // The one that left fails on its own closed client.
        await rejects(
          goner,
          (e: unknown) => e instanceof RendezvousClosedError,
        );
        strictEqual(ta.connections.size + tb.connections.size, 0);
        // When the answerer left, both sides had a peer connection; when
        // the offerer did, its own at least. None is left after the settle
        // (checked in `test`).
        ok(
          leaver === "answerer" ? openAtLeave === 2 : openAtLeave >= 1,
          `${openAtLeave} peer connections open when the ${leaver} left`,
        );
      },
    );
  }

  test(
    "a dial to a peer not on the rendezvous fails with PeerUnreachableError and leaves nothing open",
    async (ba) => {
      await using server = startRendezvous();
      const [ida, idb] = await Promise.all([
        generateIdentity(),
        generateIdentity(),
      ]);
      await using ta = transportOf(ba, ida);
      await using alice = await RendezvousClient.connect(server.url, {
        identity: ida,
      });
      await rejects(
        ta.connect(alice.dial(idb.peerId), {
          ...CONNECT,
          remotePeer: idb.peerId,
          role: "offerer",
        }),
        (e: unknown) =>
          e instanceof P2prtcError &&
          e.code === "ERR_RENDEZVOUS_PEER_UNREACHABLE",
      );
      strictEqual(ta.connections.size, 0);
    },
  );
}

function transportOf(
  backend: PeerConnectionBackend,
  identity: Identity,
): WebRTCTransport {
  return new WebRTCTransport({ backend, identity, bindAddress: "127.0.0.1" });
}

/**
 * Alice and Bob on one rendezvous on loopback, each with a transport on
 * its backend; all closed on disposal.
 */
async function meet(ba: PeerConnectionBackend, bb: PeerConnectionBackend) {
  const server = startRendezvous();
  const [ida, idb] = await Promise.all([
    generateIdentity(),
    generateIdentity(),
  ]);
  const ta = transportOf(ba, ida);
  const tb = transportOf(bb, idb);
  const alice = await RendezvousClient.connect(server.url, { identity: ida });
  const bob = await RendezvousClient.connect(server.url, { identity: idb });
  return {
    ida,
    idb,
    ta,
    tb,
    alice,
    bob,
    async [Symbol.asyncDispose]() {
      await alice.close();
      await bob.close();
      await ta[Symbol.asyncDispose]();
      await tb[Symbol.asyncDispose]();
      await server[Symbol.asyncDispose]();
    },
  };
}

/**
 * Answers the next attempt made to `client` with `transport`, as a
 * listening node does; `watch` may wrap the attempt's channel.
 */
function answerNext(
  client: RendezvousClient,
  transport: WebRTCTransport,
  watch: (channel: SignalingChannel) => SignalingChannel = (c) => c,
): Promise<WebRTCConnection> {
  const answered = (async () => {
    const { remotePeer, channel } = await client.accept({
      signal: AbortSignal.timeout(STEP_MS),
    });
    return await transport.connect(watch(channel), {
      ...CONNECT,
      remotePeer,
      role: "answerer",
    });
  })();
  // Awaited by the test; it must not reject unhandled before.
  answered.catch(() => {});
  return answered;
}

/** `channel`, calling `then` once a message of `type` has been received. */
function onReceive(
  channel: SignalingChannel,
  type: SignalingMessage["type"],
  then: () => Promise<void>,
): SignalingChannel {
  return wrap(channel, {
    async receive(options) {
      const message = await channel.receive(options);
      if (message?.type === type) await then();
      return message;
    },
  });
}

/** `channel`, calling `then` once a message of `type` has been sent. */
function onSend(
  channel: SignalingChannel,
  type: SignalingMessage["type"],
  then: () => Promise<void>,
): SignalingChannel {
  return wrap(channel, {
    async send(message, options) {
      await channel.send(message, options);
      if (message.type === type) await then();
    },
  });
}

function wrap(
  channel: SignalingChannel,
  overrides: Partial<SignalingChannel>,
): SignalingChannel {
  return {
    send: (message, options) => channel.send(message, options),
    receive: (options) => channel.receive(options),
    close: () => channel.close(),
    abort: (reason) => channel.abort(reason),
    [Symbol.asyncDispose]: () => channel[Symbol.asyncDispose](),
    ...overrides,
  };
}
