/**
 * One bulk workload in a loop, to profile the data path:
 *
 * ```sh
 * deno run -P=test --cpu-prof --cpu-prof-dir=/tmp/prof bench/profile.ts \
 *   --backend libdatachannel --workload stream --mib 64
 * deno run -P=test bench/profile_top.ts /tmp/prof/*.cpuprofile
 * ```
 *
 * `--workload` is `raw` (bare data channel), `stream` (`WebRTCStream` on a
 * channel) or `transport` (`newStream` on a WebRTC-Direct or `/webrtc`
 * connection); `--backend` is `libdatachannel` or `werift`; `--mib` the
 * megabytes sent, in 16 MiB transfers; `--sctp <json>` applies libdatachannel
 * SCTP settings first. Prints the throughput of each transfer, then how
 * busy each thread of the process was after the first transfer (from
 * `/proc`, Linux only): the JavaScript thread (`deno`) against the WebRTC
 * stack's own (libdatachannel's `RTC worker`s and `juice poll`).
 *
 * @module
 */

import { libdatachannel } from "../backends/libdatachannel.ts";
import { werift } from "../backends/werift.ts";
import type { DataChannel } from "../core/backend.ts";
import { readAll } from "../tests/stream_helpers.ts";
import { p2prtcPair, rawPair, type Settling, SINK } from "./fixtures.ts";
import { flags } from "./run.ts";

const options = flags(Deno.args);
const backendName = options.get("backend")?.[0] ?? "libdatachannel";
const workload = options.get("workload")?.[0] ?? "stream";
const total = Number(options.get("mib")?.[0] ?? "64") * 1024 * 1024;
const TRANSFER = 16 << 20;
const APP_CHUNK = 64 << 10;
const payload = new Uint8Array(TRANSFER).map((_, i) => i * 7);

// `--sctp '{"recvBufferSize": 4194304}'`: libdatachannel's process-wide SCTP
// settings (node-datachannel's `setSctpSettings`), to try them.
const sctp = options.get("sctp")?.[0];
if (sctp) (await import("node-datachannel")).setSctpSettings(JSON.parse(sctp));

const backend: Settling = backendName === "werift"
  ? werift() as Settling
  : await libdatachannel();

async function writeAll(
  stream: { writable: WritableStream<Uint8Array>; closeWrite(): Promise<void> },
): Promise<void> {
  const writer = stream.writable.getWriter();
  for (let at = 0; at < TRANSFER; at += APP_CHUNK) {
    await writer.write(payload.subarray(at, at + APP_CHUNK));
  }
  writer.releaseLock();
  await stream.closeWrite();
}

async function rawTransfer(ca: DataChannel, cb: DataChannel): Promise<void> {
  let received = 0;
  const done = Promise.withResolvers<void>();
  cb.onmessage = (data) => {
    received += data.length;
    if (received >= TRANSFER) done.resolve();
  };
  ca.bufferedAmountLowThreshold = 256 << 10;
  for (let at = 0; at < TRANSFER; at += 16384) {
    if (ca.bufferedAmount > 1 << 20) {
      await new Promise<void>((resolve) => {
        ca.onbufferedamountlow = () => resolve();
      });
    }
    ca.send(payload.subarray(at, at + 16384));
  }
  await done.promise;
}

/** CPU ticks per thread name, read from `/proc` by a child process. */
async function threadTicks(): Promise<Map<string, number>> {
  const { stdout } = await new Deno.Command("sh", {
    args: ["-c", `cat /proc/${Deno.pid}/task/*/stat`],
  }).output().catch(() => ({ stdout: new Uint8Array() }));
  const ticks = new Map<string, number>();
  for (const line of new TextDecoder().decode(stdout).split("\n")) {
    const open = line.indexOf("(");
    const close = line.lastIndexOf(")");
    if (open < 0 || close < 0) continue;
    const comm = line.slice(open + 1, close);
    const fields = line.slice(close + 2).split(" ");
    // utime and stime: fields 14 and 15 of stat, 11 and 12 after the name.
    const used = Number(fields[11]) + Number(fields[12]);
    ticks.set(comm, (ticks.get(comm) ?? 0) + used);
  }
  return ticks;
}

const raw = workload === "transport" ? undefined : await rawPair(backend);
const p2prtc = workload === "transport" ? await p2prtcPair(backend) : undefined;
let ticksAfterFirst: Map<string, number> | undefined;
let startedAfterFirst = 0;
for (let sent = 0; sent < total; sent += TRANSFER) {
  if (sent === TRANSFER) {
    ticksAfterFirst = await threadTicks();
    startedAfterFirst = performance.now();
  }
  const started = performance.now();
  if (workload === "raw") {
    const [ca, cb] = await raw!.channels();
    await rawTransfer(ca, cb);
    ca.close();
  } else if (workload === "stream") {
    const [a, b] = await raw!.streams();
    await Promise.all([writeAll(a), readAll(b.readable)]);
    await b.closeWrite();
  } else {
    const stream = await p2prtc!.connection.newStream(SINK);
    await writeAll(stream);
    await readAll(stream.readable);
  }
  const ms = performance.now() - started;
  console.log(`${workload}: ${(TRANSFER / ms / 1000).toFixed(1)} MB/s`);
}
if (ticksAfterFirst !== undefined) {
  // Linux counts 100 ticks a second (USER_HZ) on every common build.
  const seconds = (performance.now() - startedAfterFirst) / 1000;
  const after = await threadTicks();
  const busy = [...after].map(([name, ticks]) =>
    [name, (ticks - (ticksAfterFirst!.get(name) ?? 0)) / 100 / seconds] as const
  ).filter(([, share]) => share > 0.005).sort((x, y) => y[1] - x[1]);
  for (const [name, share] of busy) {
    console.log(`${name.padEnd(16)} ${(share * 100).toFixed(0)}% of a core`);
  }
}
raw?.close();
await p2prtc?.close();
await backend.idle(AbortSignal.timeout(10_000));
