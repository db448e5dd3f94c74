/**
 * `deno task bench:report`: runs the bench suites (`run.ts`) and prints, in
 * Markdown, one table per backend with the medians and the ratios to the
 * baselines, the memory figures, the targets, and the machine it ran on.
 *
 * `--from <file>` reports on results saved by `deno task bench --out
 * <file>` instead of running the suites; `--suite <name>` runs only those.
 *
 * Every ratio is a speed ratio, baseline time divided by ours (equal to our
 * throughput divided by the baseline's), so above 1 means p2prtc is faster.
 * Medians are of per-iteration times, each iteration's time divided by the
 * operations it did.
 *
 * @module
 */

import { median, TEARDOWN_GROUP } from "./common.ts";
import { failures, flags, logSuite, type RunResult, runSuites } from "./run.ts";

/** Which column of a table a bench row fills, from its name. */
type Column = "raw" | "stream" | "transport" | "js";

/**
 * The column of a bench row, or `null` for a variant of the transport row
 * (a name like `p2prtc (some setting)`), which gets a table row of its own.
 */
function columnOf(name: string): Column | null {
  if (name.startsWith("raw")) return "raw";
  if (name === "p2prtc stream") return "stream";
  if (name.startsWith("p2prtc")) return name.includes("(") ? null : "transport";
  return "js";
}

/** One cell: the median time per operation and what it was measured on. */
interface Cell {
  ms: number;
  samples: number;
  bytes?: number;
}

/** One workload on one backend: its cells by column. */
interface Row {
  workload: string;
  backend: string;
  cells: Partial<Record<Column, Cell>>;
  /** Variants of the transport row, by name. */
  variants: Map<string, Cell>;
}

/** A named extra measure: the median of its recorded values. */
interface Measure {
  backend: string;
  workload: string;
  name: string;
  value: number;
  unit: string;
}

/** `"bulk 16MiB x1 streams (werift)"` → workload and backend. */
function splitGroup(group: string): { workload: string; backend: string } {
  const match = /^(.*) \(([^()]+)\)$/.exec(group);
  return match
    ? { workload: match[1], backend: match[2] }
    : { workload: group, backend: "any" };
}

/** Gathers rows and measures from a run. */
export function summarize(
  result: RunResult,
): { rows: Row[]; measures: Measure[] } {
  const rows = new Map<string, Row>();
  const measures = new Map<string, Measure & { values: number[] }>();
  for (const suite of result.suites) {
    const times = new Map<string, { ms: number[]; bytes?: number }>();
    for (const line of suite.samples) {
      const key = `${line.group}\u0000${line.name}`;
      if (line.kind === "sample") {
        const entry = times.get(key) ?? { ms: [], bytes: line.bytes };
        entry.ms.push(line.ms);
        times.set(key, entry);
      } else {
        const entry = measures.get(key) ?? {
          ...splitGroup(line.group),
          name: line.name,
          value: 0,
          unit: line.unit,
          values: [],
        };
        entry.values.push(line.value);
        measures.set(key, entry);
      }
    }
    for (const bench of suite.benches) {
      const group = bench.group ?? "";
      if (group === TEARDOWN_GROUP) continue;
      const ok = bench.results[0]?.ok;
      const sampled = times.get(`${group}\u0000${bench.name}`);
      const { workload, backend } = splitGroup(group);
      // Micro-benchmarks (the codec) have no backend and no table.
      if (backend === "any") continue;
      const row: Row = rows.get(group) ??
        { workload, backend, cells: {}, variants: new Map() };
      rows.set(group, row);
      let cell: Cell | undefined;
      if (sampled !== undefined && sampled.ms.length > 0) {
        cell = {
          ms: median(sampled.ms),
          samples: sampled.ms.length,
          bytes: sampled.bytes,
        };
      } else if (ok !== undefined) {
        // No samples file (a suite run by hand): the mean of deno bench.
        cell = { ms: ok.avg / 1e6, samples: ok.n };
      }
      if (cell === undefined) continue;
      const column = columnOf(bench.name);
      if (column === null) row.variants.set(bench.name, cell);
      else row.cells[column] = cell;
    }
  }
  const summarized = [...measures.values()].map(({ values, ...rest }) => ({
    ...rest,
    // Growth and counts are running totals: the last one holds.
    value: /growth|cycles/.test(rest.name)
      ? values[values.length - 1]
      : median(values),
  }));
  return { rows: [...rows.values()], measures: summarized };
}

/** Formats a cell: MB/s for a transfer, otherwise the time per operation. */
function formatCell(cell: Cell | undefined): string {
  if (cell === undefined) return "–";
  if (cell.bytes !== undefined) {
    return `${(cell.bytes / cell.ms / 1000).toFixed(1)} MB/s`;
  }
  return cell.ms >= 100
    ? `${cell.ms.toFixed(0)} ms`
    : cell.ms >= 10
    ? `${cell.ms.toFixed(1)} ms`
    : `${cell.ms.toFixed(2)} ms`;
}

/** Baseline time over ours: above 1, ours is faster. */
function ratio(ours: Cell | undefined, base: Cell | undefined): number | null {
  if (ours === undefined || base === undefined) return null;
  return base.ms / ours.ms;
}

function formatRatio(value: number | null): string {
  return value === null ? "–" : `${value.toFixed(2)}×`;
}

function formatBytes(value: number): string {
  const abs = Math.abs(value);
  if (abs >= 1024 * 1024) return `${(value / 1024 / 1024).toFixed(2)} MiB`;
  if (abs >= 1024) return `${(value / 1024).toFixed(1)} KiB`;
  return `${value.toFixed(0)} B`;
}

function formatMeasure(measure: Measure): string {
  return measure.unit === "bytes"
    ? formatBytes(measure.value)
    : `${measure.value}${measure.unit ? ` ${measure.unit}` : ""}`;
}

/** The machine line: CPU, cores, memory, OS, Deno. */
export async function machine(cpuFromBench?: string): Promise<string> {
  const read = (path: string) => Deno.readTextFile(path).catch(() => "");
  const cpuinfo = await read("/proc/cpuinfo");
  const cpu = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? cpuFromBench ??
    "unknown CPU";
  const kernel = (await read("/proc/sys/kernel/osrelease")).trim();
  const bytes = await physicalMemory();
  return [
    `${cpu}, ${navigator.hardwareConcurrency} cores`,
    bytes > 0 ? `${(bytes / 2 ** 30).toFixed(0)} GiB RAM` : "",
    `${Deno.build.os}${kernel ? ` ${kernel}` : ""} ${Deno.build.arch}`,
    `Deno ${Deno.version.deno}`,
  ].filter(Boolean).join(", ");
}

/**
 * The machine's memory, or 0 if unknown. Deno reads `/proc/meminfo` only
 * with every permission, so ask `getconf` (the `run` permission).
 */
async function physicalMemory(): Promise<number> {
  const value = async (name: string) => {
    try {
      const { stdout } = await new Deno.Command("getconf", { args: [name] })
        .output();
      return Number(new TextDecoder().decode(stdout).trim()) || 0;
    } catch {
      return 0;
    }
  };
  return (await value("_PHYS_PAGES")) * (await value("PAGESIZE"));
}

/** A target, and whether the run met it. */
export interface Target {
  what: string;
  value: string;
  met: boolean | null;
}

function oneStreamBulk(rows: Row[], backend: string): Row | undefined {
  return rows.find((row) =>
    row.backend === backend && /^bulk .* x1 streams?$/.test(row.workload)
  );
}

function findRow(rows: Row[], backend: string, prefix: string) {
  return rows.find((row) =>
    row.backend === backend && row.workload.startsWith(prefix)
  );
}

/** Checks the issue's targets against a run. */
export function targets(rows: Row[], measures: Measure[]): Target[] {
  const out: Target[] = [];
  for (const backend of ["libdatachannel", "werift"]) {
    const bulk = oneStreamBulk(rows, backend);
    const value = ratio(bulk?.cells.stream, bulk?.cells.raw);
    out.push({
      what: `one-stream bulk throughput ≥ 0.9 × raw data channel (${backend})`,
      value: formatRatio(value),
      met: value === null ? null : value >= 0.9,
    });
  }
  const bulk = oneStreamBulk(rows, "libdatachannel");
  const bulkJs = ratio(bulk?.cells.transport, bulk?.cells.js);
  out.push({
    what: "one-stream bulk throughput ≥ 1.3 × js-libp2p (libdatachannel)",
    value: formatRatio(bulkJs),
    met: bulkJs === null ? null : bulkJs >= 1.3,
  });
  const dial = findRow(rows, "libdatachannel", "dial to first usable stream");
  const dialJs = ratio(dial?.cells.transport, dial?.cells.js);
  out.push({
    what: "dial to first usable stream ≥ 1.3 × faster than js-libp2p",
    value: formatRatio(dialJs),
    met: dialJs === null ? null : dialJs >= 1.3,
  });
  // The first setup's figure: later setups reuse freed memory RSS hides.
  const perConnection = measures.find((m) =>
    m.name.startsWith("RSS per p2prtc connection") &&
    m.name.endsWith("first setup")
  );
  out.push({
    what: "memory per idle connection < 1 MB (both ends counted)",
    value: perConnection ? formatMeasure(perConnection) : "–",
    met: perConnection ? perConnection.value < 1_000_000 : null,
  });
  const cycles = measures.find((m) =>
    m.name === "p2prtc cycles measured for growth"
  );
  const heap = measures.find((m) =>
    m.name === "JS heap growth over p2prtc cycles"
  );
  const secondHalf = measures.find((m) =>
    m.name === "RSS growth over the second half of p2prtc cycles"
  );
  const nativeHalf = measures.find((m) =>
    m.name === "native heap growth over the second half of p2prtc cycles"
  );
  // RSS and the heap move by a few hundred KiB on their own; a leak of
  // 1 KiB a cycle would show as 1 MiB over 1000.
  const bound = Math.max(1024 * 1024, (cycles?.value ?? 0) * 1024);
  out.push({
    what: `no JS heap growth over ${
      cycles?.value ?? "?"
    } dial/close cycles (< ${formatBytes(bound)})`,
    value: heap ? formatMeasure(heap) : "–",
    met: heap ? heap.value < bound : null,
  });
  out.push({
    what: `no native heap growth over the second half of those cycles (< ${
      formatBytes(bound / 2)
    })`,
    value: nativeHalf ? formatMeasure(nativeHalf) : "–",
    met: nativeHalf ? nativeHalf.value < bound / 2 : null,
  });
  // RSS also holds V8's heap reserve and compiled code, which grow for a
  // while with no leak (docs/known-issues.md): reported, not judged.
  out.push({
    what: "RSS growth over the second half of those cycles (for reference)",
    value: secondHalf ? formatMeasure(secondHalf) : "–",
    met: null,
  });
  return out;
}

/** The Markdown report of a run. */
export async function report(result: RunResult): Promise<string> {
  const { rows, measures } = summarize(result);
  const cpu = result.suites.find((suite) => suite.cpu)?.cpu;
  const lines: string[] = [];
  lines.push(
    `Machine: ${await machine(cpu)}. Run ${result.started}${
      result.smoke ? " (smoke run: tiny sizes, numbers mean nothing)" : ""
    }.`,
    "",
    "Medians per operation. Ratios are speed ratios, baseline time ÷ ours: " +
      "above 1, p2prtc is faster. `ours ÷ raw` compares the p2prtc stream " +
      "(or, where there is none, the transport) with the bare data channel " +
      "of the same backend; `ours ÷ js-libp2p` compares the p2prtc transport " +
      "with js-libp2p's `@libp2p/webrtc`, both on loopback in one process.",
  );
  const backends = [...new Set(rows.map((row) => row.backend))];
  for (const backend of backends) {
    lines.push(
      "",
      `**${backend}**`,
      "",
      "| workload | raw | p2prtc stream | p2prtc transport | js-libp2p | ours ÷ raw | ours ÷ js-libp2p |",
      "| --- | --- | --- | --- | --- | --- | --- |",
    );
    for (const row of rows.filter((row) => row.backend === backend)) {
      const { raw, stream, transport, js } = row.cells;
      lines.push(
        `| ${row.workload} | ${formatCell(raw)} | ${formatCell(stream)} | ${
          formatCell(transport)
        } | ${formatCell(js)} | ${
          formatRatio(ratio(stream ?? transport, raw))
        } | ${formatRatio(ratio(transport, js))} |`,
      );
      for (const [name, cell] of row.variants) {
        lines.push(
          `| ${row.workload}, ${name} | ${formatCell(raw)} | – | ${
            formatCell(cell)
          } | ${formatCell(js)} | ${formatRatio(ratio(cell, raw))} | ${
            formatRatio(ratio(cell, js))
          } |`,
        );
      }
    }
  }
  if (measures.length > 0) {
    lines.push("", "| measure | value |", "| --- | --- |");
    for (const measure of measures) {
      lines.push(
        `| ${measure.workload} (${measure.backend}): ${measure.name} | ${
          formatMeasure(measure)
        } |`,
      );
    }
  }
  lines.push("", "| target | this run | met |", "| --- | --- | --- |");
  for (const target of targets(rows, measures)) {
    const met = target.met === null ? "–" : target.met ? "yes" : "**no**";
    lines.push(`| ${target.what} | ${target.value} | ${met} |`);
  }
  const failed = failures(result);
  if (failed.length > 0) lines.push("", `Failed: ${failed.join("; ")}.`);
  return lines.join("\n");
}

if (import.meta.main) {
  const options = flags(Deno.args);
  const from = options.get("from")?.[0];
  const result: RunResult = from
    ? JSON.parse(await Deno.readTextFile(from))
    : await runSuites({
      suites: options.get("suite"),
      smoke: options.has("smoke"),
      onSuite: logSuite,
    });
  console.log(await report(result));
  if (failures(result).length > 0) Deno.exit(1);
}
