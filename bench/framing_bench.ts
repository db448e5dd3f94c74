/**
 * The cost of the framing and the stream state machine alone, with no WebRTC
 * stack under them: 1 MiB through a stream over the in-process fake channel,
 * against the same bytes sent raw over the same fake (the baseline), and the
 * codec on its own.
 *
 * Run it with `deno task bench`, or alone:
 * `deno bench -P=test bench/framing_bench.ts`.
 *
 * @module
 */

import {
  encodeFrame,
  FrameDecoder,
  MAX_FRAME_SIZE,
  MAX_PAYLOAD_SIZE,
} from "../core/framing.ts";
import { createChannelPair } from "../tests/fake_channel.ts";
import { readAll, wrapPair, writeAndClose } from "../tests/stream_helpers.ts";
import { benchCase, pick } from "./common.ts";

const SIZE = pick(1 << 20, 64 << 10);
const DATA = new Uint8Array(SIZE);
const FULL = new Uint8Array(MAX_PAYLOAD_SIZE);
const scratch = new Uint8Array(MAX_FRAME_SIZE);
const encoded = encodeFrame({ message: FULL });

Deno.bench("encode a full data frame", { group: "codec" }, () => {
  encodeFrame({ message: FULL }, scratch);
});

Deno.bench("decode a full data frame", { group: "codec" }, () => {
  new FrameDecoder().push(encoded, () => {});
});

const group = `bulk ${SIZE >> 10}KiB x1 stream (fake channel)`;
const n = pick(50, 2);

benchCase({
  group,
  name: "raw data channel",
  baseline: true,
  n,
  bytes: SIZE,
  async fn() {
    const [a, b] = createChannelPair();
    let received = 0;
    const done = Promise.withResolvers<void>();
    b.onmessage = (data) => {
      received += data.length;
      if (received === DATA.length) done.resolve();
    };
    for (let i = 0; i < DATA.length; i += MAX_PAYLOAD_SIZE) {
      a.send(DATA.subarray(i, i + MAX_PAYLOAD_SIZE));
    }
    await done.promise;
  },
});

benchCase({
  group,
  name: "p2prtc stream",
  n,
  bytes: SIZE,
  async fn() {
    const [ca, cb] = createChannelPair();
    const { a, b } = wrapPair(ca, cb);
    await Promise.all([writeAndClose(a, DATA), readAll(b.readable)]);
    await b.close();
  },
});
