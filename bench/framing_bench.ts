/**
 * The cost of the framing and the stream state machine alone, with no WebRTC
 * stack under them: 1 MiB through a stream over the in-process fake channel,
 * against the same bytes sent raw over the same fake (the baseline).
 *
 * Run: `deno bench -P=test bench/framing_bench.ts`
 */

import {
  encodeFrame,
  FrameDecoder,
  MAX_FRAME_SIZE,
  MAX_PAYLOAD_SIZE,
} from "../core/framing.ts";
import { createChannelPair } from "../tests/fake_channel.ts";
import { readAll, wrapPair, writeAndClose } from "../tests/stream_helpers.ts";

const MIB = new Uint8Array(1 << 20);
const FULL = new Uint8Array(MAX_PAYLOAD_SIZE);
const scratch = new Uint8Array(MAX_FRAME_SIZE);
const encoded = encodeFrame({ message: FULL });

Deno.bench("encode a full data frame", { group: "codec" }, () => {
  encodeFrame({ message: FULL }, scratch);
});

Deno.bench("decode a full data frame", { group: "codec" }, () => {
  new FrameDecoder().push(encoded, () => {});
});

Deno.bench(
  "1 MiB raw over the fake channel",
  { group: "fake 1 MiB", baseline: true },
  async () => {
    const [a, b] = createChannelPair();
    let received = 0;
    const done = Promise.withResolvers<void>();
    b.onmessage = (data) => {
      received += data.length;
      if (received === MIB.length) done.resolve();
    };
    for (let i = 0; i < MIB.length; i += MAX_PAYLOAD_SIZE) {
      a.send(MIB.subarray(i, i + MAX_PAYLOAD_SIZE));
    }
    await done.promise;
  },
);

Deno.bench(
  "1 MiB through a stream over the fake channel",
  { group: "fake 1 MiB" },
  async () => {
    const [ca, cb] = createChannelPair();
    const { a, b } = wrapPair(ca, cb);
    await Promise.all([writeAndClose(a, MIB), readAll(b.readable)]);
    await b.close();
  },
);
