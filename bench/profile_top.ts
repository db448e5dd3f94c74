/**
 * Summarizes V8 CPU profiles (`deno run --cpu-prof`): the functions with
 * the most self time, and the share of time in native code, GC and idle.
 *
 * ```sh
 * deno run -P=test bench/profile_top.ts /tmp/prof/*.cpuprofile [--top 25]
 * ```
 *
 * @module
 */

import { flags } from "./run.ts";

interface ProfileNode {
  id: number;
  callFrame: {
    functionName: string;
    url: string;
    lineNumber: number;
  };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time by function, in ms, heaviest first. */
export function selfTimes(profile: Profile): [string, number][] {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const frame = byId.get(id)!.callFrame;
    const where = frame.url
      ? `${frame.url.replace(/^.*\/(?:node_modules|npm|work\/main)\//, "")}:${
        frame.lineNumber + 1
      }`
      : "";
    const key = `${frame.functionName || "(anonymous)"} ${where}`.trim();
    self.set(key, (self.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  });
  return [...self.entries()].sort((a, b) => b[1] - a[1]);
}

if (import.meta.main) {
  const options = flags(Deno.args);
  const top = Number(options.get("top")?.[0] ?? "25");
  const files = Deno.args.filter((arg) =>
    arg.endsWith(".cpuprofile") && !arg.startsWith("--")
  );
  for (const file of files) {
    const times = selfTimes(JSON.parse(await Deno.readTextFile(file)));
    const total = times.reduce((sum, [, ms]) => sum + ms, 0);
    console.log(`${file}: ${total.toFixed(0)} ms sampled`);
    for (const [name, ms] of times.slice(0, top)) {
      console.log(
        `${ms.toFixed(0).padStart(7)} ms ${
          (100 * ms / total).toFixed(1).padStart(5)
        }%  ${name}`,
      );
    }
  }
}
