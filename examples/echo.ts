/**
 * Echo over WebRTC on loopback: a listening peer and a dialing peer in one
 * process, connected by in-process signalling. The dialer opens an
 * `/echo/1.0.0` stream, sends N random bytes, checks that the same bytes come
 * back, and prints the throughput. Exits 0 only if they did.
 *
 * Run: `deno task demo`, or
 * `deno run -P=demo examples/echo.ts --bytes 1048576 --backend werift`.
 *
 * No ICE server is used and every candidate is on 127.0.0.1.
 */

import { parseArgs } from "node:util";
import type { PeerConnectionBackend } from "../core/backend.ts";
import { negotiate } from "../core/negotiation.ts";
import { handle, select } from "../core/multistream.ts";
import { WebRTCStream } from "../core/stream.ts";
import { memorySignalingPair } from "../signaling/memory.ts";

const ECHO = "/echo/1.0.0";

async function loadBackend(name: string): Promise<PeerConnectionBackend> {
  switch (name) {
    case "libdatachannel":
      return await (await import("../backends/libdatachannel.ts"))
        .libdatachannel();
    case "werift":
      return (await import("../backends/werift.ts")).werift();
    default:
      throw new Error(`unknown backend ${name}: libdatachannel or werift`);
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      bytes: { type: "string", default: String(10 * 1024 * 1024) },
      backend: { type: "string", default: "libdatachannel" },
    },
  });
  const size = Number(values.bytes);
  const backend = await loadBackend(values.backend);
  const loopback = { bindAddress: "127.0.0.1" };
  const listener = backend.createPeerConnection(loopback);
  const dialer = backend.createPeerConnection(loopback);

  try {
    // The listener answers every stream with multistream-select, then echoes.
    listener.ondatachannel = (channel) => {
      if (channel.label === "init") return channel.close();
      const stream = new WebRTCStream(channel);
      handle(stream, [ECHO])
        .then((echo) => echo.readable.pipeTo(echo.writable))
        .catch(() => stream.reset());
    };

    const [toListener, toDialer] = memorySignalingPair();
    const started = performance.now();
    await Promise.all([
      negotiate(dialer, toListener, "offerer"),
      negotiate(listener, toDialer, "answerer"),
    ]);
    const connected = performance.now();
    console.log(
      `connected over ${backend.name} in ${
        (connected - started).toFixed(0)
      } ms`,
    );

    const data = crypto.getRandomValues(new Uint8Array(Math.min(size, 65536)));
    const payload = new Uint8Array(size);
    for (let i = 0; i < size; i += data.length) payload.set(data, i);

    await using echo = await select(
      new WebRTCStream(dialer.createDataChannel("")),
      [ECHO],
    );
    const writing = (async () => {
      const writer = echo.writable.getWriter();
      await writer.write(payload);
      await writer.close();
    })();
    let offset = 0;
    let same = true;
    for await (const chunk of echo.readable) {
      for (let i = 0; i < chunk.length && same; i++) {
        same = chunk[i] === payload[offset + i];
      }
      offset += chunk.length;
    }
    await writing;
    const seconds = (performance.now() - connected) / 1000;
    if (!same || offset !== size) {
      console.error(`echo mismatch: sent ${size} bytes, got ${offset} back`);
      return 1;
    }
    console.log(
      `echoed ${size} bytes byte-exact in ${seconds.toFixed(2)} s: ` +
        `${(2 * size / seconds / 1e6).toFixed(1)} MB/s both ways`,
    );
    return 0;
  } finally {
    dialer.close();
    listener.close();
  }
}

// No Deno.exit(): closing everything must be enough for the process to end.
Deno.exitCode = await main();
