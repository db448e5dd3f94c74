/**
 * What every bench suite shares: the smoke switch, sizes, and the recorder
 * that keeps each iteration's time so the report can quote medians.
 *
 * `deno bench --json` reports a mean and percentiles but no median, and
 * nothing but times. So each suite also writes one JSON line per measured
 * iteration (and one per extra measure, such as memory) to the file named by
 * `P2PRTC_BENCH_SAMPLES`, when it is set; `bench/run.ts` sets it.
 *
 * @module
 */

/** Set by the smoke test: every suite runs a few tiny iterations. */
export const SMOKE = Deno.env.get("P2PRTC_BENCH_SMOKE") === "1";

const samplesFile = Deno.env.get("P2PRTC_BENCH_SAMPLES");

/** Picks the full-run value, or the smoke-run one under {@linkcode SMOKE}. */
export function pick<T>(full: T, smoke: T): T {
  return SMOKE ? smoke : full;
}

/** One line of the samples file. */
export type SampleLine =
  | {
    kind: "sample";
    group: string;
    name: string;
    /** Milliseconds per operation. */
    ms: number;
    /** Payload bytes per operation, for throughputs. */
    bytes?: number;
  }
  | {
    kind: "metric";
    group: string;
    name: string;
    value: number;
    unit: string;
  };

function write(line: SampleLine): void {
  if (samplesFile === undefined) return;
  Deno.writeTextFileSync(samplesFile, JSON.stringify(line) + "\n", {
    append: true,
  });
}

/** Records an extra measure (memory, say) under a group. */
export function metric(
  group: string,
  name: string,
  value: number,
  unit: string,
): void {
  write({ kind: "metric", group, name, value, unit });
}

/** What an iteration gets: its timer, and a recorder of extra measures. */
export interface Timer {
  /** Starts measuring (the iteration's start, unless called). */
  start(): void;
  /** Stops measuring (the iteration's end, unless called). */
  end(): void;
  /**
   * Records an extra measure (memory, say) in the case's group; dropped
   * during the warm-up call.
   */
  metric(name: string, value: number, unit: string): void;
  /** Whether this is the warm-up call, whose figures are not recorded. */
  readonly warmup: boolean;
}

/** A bench case for {@linkcode benchCase}. */
export interface BenchCase {
  /** The row's name. */
  name: string;
  /** The group: one comparison, on one backend. */
  group: string;
  /** Whether this row is the group's baseline. */
  baseline?: boolean;
  /** Measured iterations (a first, warm-up call is not recorded). */
  n: number;
  /** Operations per iteration: the recorded time is per operation. */
  ops?: number;
  /** Payload bytes per operation, for throughput rows. */
  bytes?: number;
  /** One iteration. Without `timer` calls, all of it is measured. */
  fn(timer: Timer): Promise<void>;
}

/**
 * Registers a `Deno.bench` that also records each iteration's time per
 * operation in the samples file. Its first call is the warm-up that
 * `deno bench` always makes, and is left out.
 */
export function benchCase(spec: BenchCase): void {
  let calls = 0;
  const ops = spec.ops ?? 1;
  Deno.bench({
    name: spec.name,
    group: spec.group,
    baseline: spec.baseline ?? false,
    n: spec.n,
    warmup: 1,
    async fn(b) {
      let started = performance.now();
      let ended: number | undefined;
      let explicit = false;
      const warmup = calls === 0;
      await spec.fn({
        warmup,
        metric(name, value, unit) {
          if (!warmup) metric(spec.group, name, value, unit);
        },
        start() {
          explicit = true;
          b.start();
          started = performance.now();
        },
        end() {
          ended = performance.now();
          b.end();
        },
      });
      ended ??= performance.now();
      if (explicit && ended < started) ended = performance.now();
      if (calls++ === 0) return;
      write({
        kind: "sample",
        group: spec.group,
        name: spec.name,
        ms: (ended - started) / ops,
        ...(spec.bytes === undefined ? {} : { bytes: spec.bytes }),
      });
    },
  });
}

/** A reading of the process's memory, in bytes. */
export interface Memory {
  /**
   * The resident set size: everything, native memory included, and also
   * what V8 has reserved for its heap and compiled code and what glibc
   * keeps of memory freed by native threads.
   */
  rss: number;
  /** The JavaScript heap in use. */
  heap: number;
  /**
   * Native memory in use: what malloc has handed out and not had back, in
   * every arena (glibc's `mallinfo2`), which is where libdatachannel,
   * libjuice and usrsctp keep their state. `undefined` where glibc's
   * `libc.so.6` cannot be loaded.
   */
  native?: number;
}

/** The fields of glibc's `struct mallinfo2`, all `size_t`. */
const MALLINFO2_FIELDS = 10;
/** `uordblks`: bytes in use by malloc, in every arena. */
const MALLINFO2_IN_USE = 7;

let mallinfo: (() => number) | null | undefined;

/** Native memory malloc has in use, or `undefined` off glibc. */
function nativeInUse(): number | undefined {
  if (mallinfo === undefined) {
    try {
      const libc = Deno.dlopen("libc.so.6", {
        mallinfo2: {
          parameters: [],
          result: { struct: Array(MALLINFO2_FIELDS).fill("usize") },
        },
      });
      mallinfo = () => {
        const info = libc.symbols.mallinfo2() as Uint8Array<ArrayBuffer>;
        const fields = new BigUint64Array(
          info.buffer,
          info.byteOffset,
          MALLINFO2_FIELDS,
        );
        return Number(fields[MALLINFO2_IN_USE]);
      };
    } catch {
      mallinfo = null;
    }
  }
  return mallinfo?.();
}

/** The memory now, after a full GC when one is exposed (`--expose-gc`). */
export function memory(): Memory {
  (globalThis as { gc?: () => void }).gc?.();
  const { rss, heapUsed } = Deno.memoryUsage();
  return { rss, heap: heapUsed, native: nativeInUse() };
}

/** The median of a non-empty list. */
export function median(values: number[]): number {
  const sorted = values.toSorted((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? sorted[middle]
    : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Things a suite must close before the process ends, closed in reverse order
 * by {@linkcode closeAll}.
 */
const open: (() => void | Promise<void>)[] = [];

/** Registers `close` to run at the end of the suite. */
export function onExit(close: () => void | Promise<void>): void {
  open.push(close);
}

/**
 * A fixture made on first use and kept for the rest of the suite; it is
 * closed by {@linkcode closeAll}.
 */
export function lazy<T extends { close(): Promise<void> | void }>(
  make: () => Promise<T>,
): () => Promise<T> {
  let made: Promise<T> | undefined;
  return () => {
    if (made === undefined) {
      made = make();
      const mine = made;
      onExit(async () => (await mine).close());
    }
    return made;
  };
}

/** Runs every registered close, newest first; errors are reported, not thrown. */
export async function closeAll(): Promise<void> {
  while (open.length > 0) {
    try {
      await open.pop()!();
    } catch (error) {
      console.error("bench teardown:", error);
    }
  }
}

/** The group of {@linkcode teardownBench}'s row, which reports leave out. */
export const TEARDOWN_GROUP = "teardown";

/**
 * Registers, last, a bench row that closes everything the suite opened and
 * then runs `after` (stopping a native library, say). `deno bench` exits
 * as soon as its last bench returns, with no hook to wait in, and native
 * threads still running at that moment crash the exit; so the suite's
 * teardown is itself a bench, and a run filtered without it may crash.
 */
export function teardownBench(after?: () => Promise<void> | void): void {
  let done = false;
  Deno.bench({
    name: "close everything",
    group: TEARDOWN_GROUP,
    n: 1,
    warmup: 1,
    async fn() {
      if (done) return;
      done = true;
      await closeAll();
      await after?.();
    },
  });
}
