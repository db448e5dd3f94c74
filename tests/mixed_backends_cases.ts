/**
 * libdatachannel and werift talking to each other, in both orders (the first
 * named backend offers): the shared conformance suite, then what it does not
 * cover (both directions of bulk data, data written just before close, the
 * exact states a clean close shows on the other side). In this process, on
 * loopback, with no ICE server.
 *
 * Registered by `native_test.ts`, the one test file that may load
 * node-datachannel (see there why).
 *
 * Each test closes whatever it left open, waits until both backends report
 * nothing open, and asserts the counts are zero.
 */

import { deepStrictEqual } from "node:assert/strict";
import type {
  DataChannel,
  PeerConnection,
  PeerConnectionBackend,
} from "../core/backend.ts";
import { libdatachannel } from "../backends/libdatachannel.ts";
import { werift } from "../backends/werift.ts";
import { LOOPBACK } from "./conformance/connect.ts";
import { conformanceSuite, type VanishingPeer } from "./conformance/suite.ts";
import {
  closed,
  collect,
  CONNECT_MS,
  connectChannels,
  inboundChannel,
  NOTHING_OPEN,
  reaches,
  sha256,
  within,
} from "./peer_connection_helpers.ts";
import { random, randomBytes } from "./random.ts";

/** Each side closes with a DTLS close_notify, which the other acts on at once. */
const NOTICE_MS = 2_000;
const MAX_MESSAGE_SIZE = 16384;

/** A backend that can also say when everything it made has stopped. */
type Backend = PeerConnectionBackend & {
  idle(signal?: AbortSignal): Promise<void>;
};

const makers: Record<string, () => Promise<Backend>> = {
  libdatachannel: () => libdatachannel(),
  werift: () => Promise.resolve(werift()),
};

const ORDERS = [
  ["libdatachannel", "werift"],
  ["werift", "libdatachannel"],
] as const;

// ---------------------------------------------------------------------------
// The shared conformance suite, both orders

/** Each backend as the process that vanishes, and how long its survivor takes. */
const VANISHING: Record<string, Omit<VanishingPeer, "boundMs">> = {
  libdatachannel: {
    module: new URL("../backends/libdatachannel.ts", import.meta.url),
    factory: "libdatachannel",
    permissions: ["--allow-read", "--allow-ffi"],
  },
  werift: {
    module: new URL("../backends/werift.ts", import.meta.url),
    factory: "werift",
    permissions: [
      "--allow-net",
      "--allow-env",
      "--allow-sys=networkInterfaces",
      // Not for werift: the harness imports the backend module dynamically.
      `--allow-read=${new URL("..", import.meta.url).pathname}`,
    ],
  },
};

/**
 * How long the surviving (offering) backend takes to notice a vanished peer:
 * libdatachannel about 14 s with data in flight (SCTP gives up); werift 30 s
 * (its SCTP retransmits without limit, so ICE consent expiry decides).
 */
const NOTICE_VANISHED_MS: Record<string, number> = {
  libdatachannel: 25_000,
  werift: 40_000,
};

for (const [first, second] of ORDERS) {
  conformanceSuite(
    `mixed ${first}→${second}`,
    async () => ({ a: await makers[first](), b: await makers[second]() }),
    {
      settle: (backend, signal) => (backend as Backend).idle(signal),
      vanishingPeer: {
        ...VANISHING[second],
        boundMs: NOTICE_VANISHED_MS[first],
      },
    },
  );
}

// ---------------------------------------------------------------------------
// Helpers

interface Peers {
  /** The offerer. */
  a: PeerConnection;
  /** The answerer. */
  b: PeerConnection;
}

/**
 * Registers one test per order. `a` comes from the first backend of the
 * order and offers; `b` from the second.
 */
function mixedTest(
  name: string,
  body: (peers: Peers, names: readonly [string, string]) => Promise<void>,
): void {
  for (const order of ORDERS) {
    Deno.test(`mixed ${order[0]}→${order[1]}: ${name}`, async () => {
      const first = await makers[order[0]]();
      const second = await makers[order[1]]();
      const a = first.createPeerConnection(LOOPBACK);
      const b = second.createPeerConnection(LOOPBACK);
      try {
        await body({ a, b }, order);
      } finally {
        a.close();
        b.close();
        await Promise.all([
          first.idle(AbortSignal.timeout(CONNECT_MS)),
          second.idle(AbortSignal.timeout(CONNECT_MS)),
        ]);
      }
      deepStrictEqual(first.openHandles(), NOTHING_OPEN);
      deepStrictEqual(second.openHandles(), NOTHING_OPEN);
    });
  }
}

/** Sends `data` in 16 KiB messages, waiting on the low-water event above `high`. */
async function sendAll(channel: DataChannel, data: Uint8Array): Promise<void> {
  const high = 1024 * 1024;
  channel.bufferedAmountLowThreshold = 256 * 1024;
  for (let sent = 0; sent < data.length; sent += MAX_MESSAGE_SIZE) {
    if (channel.bufferedAmount > high) {
      await within(
        new Promise<void>((resolve) => (channel.onbufferedamountlow = resolve)),
        CONNECT_MS,
        "bufferedamountlow",
      );
    }
    channel.send(data.subarray(sent, sent + MAX_MESSAGE_SIZE));
  }
}

function receiveAll(channel: DataChannel, total: number): Promise<Uint8Array> {
  const received = new Uint8Array(total);
  let offset = 0;
  return within(
    new Promise((resolve) => {
      channel.onmessage = (m) => {
        received.set(m, offset);
        offset += m.length;
        if (offset === total) resolve(received);
      };
    }),
    60_000,
    `${total} bytes`,
  );
}

// ---------------------------------------------------------------------------
// Tests

mixedTest(
  "4 MiB each way with backpressure arrives intact",
  async (peers, names) => {
    const { a, b } = peers;
    await connectChannels(a, b);
    const { out, inn } = await inboundChannel(a, b);
    const total = 4 * 1024 * 1024;
    for (
      const [from, to, label] of [[out, inn, `${names[0]}→${names[1]}`], [
        inn,
        out,
        `${names[1]}→${names[0]}`,
      ]] as const
    ) {
      const data = randomBytes(random(total ^ label.length), total);
      const received = receiveAll(to, total);
      const started = performance.now();
      await sendAll(from, data);
      const got = await received;
      const seconds = (performance.now() - started) / 1000;
      console.log(`${label} 4 MiB: ${(total / 1e6 / seconds).toFixed(1)} MB/s`);
      deepStrictEqual(sha256(got), sha256(data));
    }
  },
);

mixedTest(
  "data sent just before close() is delivered, whichever side closes",
  async (peers) => {
    const { a, b } = peers;
    await connectChannels(a, b);
    for (const closer of ["offerer", "answerer"] as const) {
      const { out, inn } = closer === "offerer"
        ? await inboundChannel(a, b)
        : await inboundChannel(b, a);
      const messages = Array.from(
        { length: 32 },
        (_, i) => new Uint8Array(MAX_MESSAGE_SIZE).fill(i),
      );
      const got = collect(inn, messages.length);
      const both = Promise.all([closed(out), closed(inn)]);
      for (const m of messages) {
        out.send(m);
      }
      out.close();
      deepStrictEqual(await got, messages);
      await both;
    }
  },
);

mixedTest(
  "the offerer closing is seen at once by the answerer",
  async (peers) => {
    const { a, b } = peers;
    const { b0 } = await connectChannels(a, b);
    const { inn } = await inboundChannel(a, b);
    const seen = reaches(b, "closed", NOTICE_MS);
    const channelsClosed = Promise.all([closed(b0), closed(inn)]);
    a.close();
    const [, states] = await Promise.all([channelsClosed, seen]);
    deepStrictEqual(states, ["disconnected", "closed"]);
  },
);

mixedTest(
  "the answerer closing is seen at once by the offerer",
  async (peers) => {
    const { a, b } = peers;
    const { a0 } = await connectChannels(a, b);
    const seen = reaches(a, "closed", NOTICE_MS);
    const channelClosed = closed(a0);
    b.close();
    const [, states] = await Promise.all([channelClosed, seen]);
    deepStrictEqual(states, ["disconnected", "closed"]);
  },
);
