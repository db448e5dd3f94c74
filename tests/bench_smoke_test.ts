/**
 * Keeps the bench suites from rotting: each `bench/*_bench.ts` runs as
 * `deno bench --json` in a child process of its own (node-datachannel allows
 * one isolate per process) with `P2PRTC_BENCH_SMOKE=1`, which makes every
 * case a few tiny iterations. A suite passes when it exits 0 with every row
 * ok and every case has recorded samples; the report is then built from
 * what they produced. No time is asserted: benchmarks are never timed
 * assertions.
 */

import { ok, strictEqual } from "node:assert/strict";
import { TEARDOWN_GROUP } from "../bench/common.ts";
import { report } from "../bench/report.ts";
import {
  failures,
  type RunResult,
  runSuite,
  type SuiteResult,
  SUITES,
} from "../bench/run.ts";

const results: SuiteResult[] = [];

for (const suite of SUITES) {
  Deno.test(`bench smoke: ${suite} suite runs`, async () => {
    const result = await runSuite(suite, {
      smoke: true,
      // The suites take seconds each; the bound is for a hung one.
      suiteTimeout: 300_000,
    });
    results.push(result);
    // The failed rows first: they carry the error, the exit code does not.
    const run: RunResult = { started: "", smoke: true, suites: [result] };
    strictEqual(failures(run).join("\n"), "");
    strictEqual(
      result.code,
      0,
      `exit code; stderr ends:\n${result.stderrTail}`,
    );
    ok(result.benches.length > 0, "deno bench --json reported no row");
    // Every case of benchCase recorded its iterations (the codec rows are
    // plain Deno.bench micro-benchmarks and the teardown row records none).
    for (const row of result.benches) {
      if (row.group === "codec" || row.group === TEARDOWN_GROUP) continue;
      ok(
        result.samples.some((line) =>
          line.kind === "sample" && line.group === row.group &&
          line.name === row.name
        ),
        `no samples for ${row.group} / ${row.name}`,
      );
    }
  });
}

Deno.test("bench smoke: the report has a table per backend and the targets", async () => {
  const text = await report({ started: "smoke", smoke: true, suites: results });
  for (const heading of ["**libdatachannel**", "**werift**", "| target |"]) {
    ok(text.includes(heading), `no ${heading} in the report:\n${text}`);
  }
  ok(/^Machine: .+, \d+ cores/m.test(text), "no machine line");
});
