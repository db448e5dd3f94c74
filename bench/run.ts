/**
 * Runs the bench suites, each `bench/*_bench.ts` in a `deno bench --json`
 * process of its own, and collects their results.
 *
 * One process per file, because node-datachannel may be loaded by only one
 * V8 isolate per process and `deno bench` runs several files in one process
 * (an isolate each): `deno bench bench/` would crash. Each suite also writes
 * its per-iteration times and extra measures to a samples file (see
 * `common.ts`), collected here too.
 *
 * `deno task bench` runs every suite and prints the collected results as
 * one JSON document; `--out <file>` writes it to a file instead, and
 * `--suite <name>` (repeatable) runs only those suites. `deno task
 * bench:report` turns results into tables (`report.ts`).
 *
 * @module
 */

import type { SampleLine } from "./common.ts";

/** The suites, in the order they run; each is `bench/<name>_bench.ts`. */
export const SUITES = [
  "framing",
  "bulk",
  "latency",
  "dial",
  "scale",
  "cycles",
] as const;

/** One bench row as `deno bench --json` reports it. */
export interface BenchRow {
  origin: string;
  group: string | null;
  name: string;
  baseline: boolean;
  results: {
    ok?: {
      n: number;
      min: number;
      max: number;
      avg: number;
      p75: number;
      p99: number;
    };
    failed?: unknown;
  }[];
}

/** What one suite produced. */
export interface SuiteResult {
  /** The suite's name (`bulk` for `bench/bulk_bench.ts`). */
  suite: string;
  /** The exit code of its `deno bench` process. */
  code: number;
  /** The runtime and CPU line of `deno bench --json`, if it got that far. */
  runtime?: string;
  cpu?: string;
  /** The rows `deno bench --json` reported. */
  benches: BenchRow[];
  /** The samples file's lines: per-iteration times and extra measures. */
  samples: SampleLine[];
  /** The end of its stderr, for a failure's cause. */
  stderrTail: string;
  /** Wall time of the whole process, in ms. */
  wallMs: number;
}

/** Everything one run produced. */
export interface RunResult {
  /** When the run started (ISO 8601). */
  started: string;
  /** Whether the suites ran in smoke mode. */
  smoke: boolean;
  suites: SuiteResult[];
}

/** Options for {@linkcode runSuites}. */
export interface RunOptions {
  /** Which suites; default all of {@linkcode SUITES}. */
  suites?: readonly string[];
  /** Run each suite's few, tiny iterations (`P2PRTC_BENCH_SMOKE=1`). */
  smoke?: boolean;
  /** The time limit of one suite, in ms. Default 40 min, 5 min in smoke. */
  suiteTimeout?: number;
  /** Hears of each suite as it ends. */
  onSuite?: (result: SuiteResult) => void;
}

/** The JSON document in `deno bench --json`'s stdout, past any other output. */
function parseBenchJson(
  stdout: string,
): { runtime?: string; cpu?: string; benches: BenchRow[] } {
  const start = stdout.indexOf("{\n");
  if (start < 0) return { benches: [] };
  try {
    const parsed = JSON.parse(stdout.slice(start));
    return {
      runtime: parsed.runtime,
      cpu: parsed.cpu,
      benches: parsed.benches ?? [],
    };
  } catch {
    return { benches: [] };
  }
}

/** Runs one suite in a `deno bench` process of its own. */
export async function runSuite(
  suite: string,
  options: RunOptions = {},
): Promise<SuiteResult> {
  const smoke = options.smoke ?? false;
  const limit = options.suiteTimeout ?? (smoke ? 5 : 40) * 60_000;
  const samplesFile = await Deno.makeTempFile({ prefix: `p2prtc-${suite}-` });
  const file = new URL(`./${suite}_bench.ts`, import.meta.url).pathname;
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "bench",
      "-P=test",
      "--json",
      // For the memory figures: a full GC before each reading.
      "--v8-flags=--expose-gc",
      file,
    ],
    env: {
      P2PRTC_BENCH_SAMPLES: samplesFile,
      ...(smoke ? { P2PRTC_BENCH_SMOKE: "1" } : {}),
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }, limit);
  try {
    const { code, stdout, stderr } = await child.output();
    const json = parseBenchJson(new TextDecoder().decode(stdout));
    const samples = (await Deno.readTextFile(samplesFile))
      .split("\n")
      .filter((line) => line.trim() !== "")
      .map((line) => JSON.parse(line) as SampleLine);
    return {
      suite,
      code,
      ...json,
      samples,
      stderrTail: new TextDecoder().decode(stderr).slice(-4000),
      wallMs: performance.now() - started,
    };
  } finally {
    clearTimeout(timer);
    await Deno.remove(samplesFile).catch(() => {});
  }
}

/** Runs the suites one after another; see {@linkcode RunOptions}. */
export async function runSuites(options: RunOptions = {}): Promise<RunResult> {
  const started = new Date().toISOString();
  const suites: SuiteResult[] = [];
  for (const suite of options.suites ?? SUITES) {
    const result = await runSuite(suite, options);
    suites.push(result);
    options.onSuite?.(result);
  }
  return { started, smoke: options.smoke ?? false, suites };
}

/**
 * The rows of a result that failed, as `suite: group / name: error`, the
 * error being what `deno bench --json` reported (its first lines).
 */
export function failures(result: RunResult): string[] {
  const out: string[] = [];
  for (const suite of result.suites) {
    if (suite.code !== 0 && suite.benches.length === 0) {
      out.push(`${suite.suite}: exit code ${suite.code}`);
    }
    for (const row of suite.benches) {
      const failed = row.results.find((r) => r.ok === undefined);
      if (failed === undefined) continue;
      const error = typeof failed.failed === "string"
        ? failed.failed
        : JSON.stringify(failed.failed ?? null);
      out.push(
        `${suite.suite}: ${row.group} / ${row.name}: ` +
          error.split("\n").slice(0, 12).join("\n"),
      );
    }
  }
  return out;
}

/** Reads `--name value` flags (repeatable ones collect every value). */
export function flags(args: string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!arg.startsWith("--")) continue;
    const [name, inline] = arg.slice(2).split("=", 2);
    const value = inline ?? (args[i + 1]?.startsWith("--") ? "" : args[++i]);
    out.set(name, [...(out.get(name) ?? []), value ?? ""]);
  }
  return out;
}

/** Prints a one-line account of a suite on stderr. */
export function logSuite(result: SuiteResult): void {
  const rows = result.benches.length;
  const failed =
    result.benches.filter((row) => row.results.some((r) => r.ok === undefined))
      .length;
  console.error(
    `${result.suite}: exit ${result.code}, ${rows} rows, ${failed} failed, ` +
      `${(result.wallMs / 1000).toFixed(0)} s`,
  );
  if (result.code !== 0) console.error(result.stderrTail);
}

if (import.meta.main) {
  const options = flags(Deno.args);
  const result = await runSuites({
    suites: options.get("suite"),
    smoke: options.has("smoke"),
    onSuite: logSuite,
  });
  const text = JSON.stringify(result, null, 2);
  const out = options.get("out")?.[0];
  if (out) await Deno.writeTextFile(out, text + "\n");
  else console.log(text);
  const failed = failures(result);
  if (failed.length > 0) {
    console.error(`failed: ${failed.join("; ")}`);
    Deno.exit(1);
  }
}
