/**
 * A WebSocket rendezvous server (`signaling/rendezvous_server.ts`), ready to
 * run locally or to deploy to Deno Deploy as the app's entry point.
 *
 * ```sh
 * deno run --allow-net --allow-env examples/rendezvous_server.ts
 * # several processes sharing one view: one KV file, and polling
 * RENDEZVOUS_KV=/tmp/rendezvous.sqlite RENDEZVOUS_POLL_MS=250 PORT=8001 \
 *   deno run --allow-net --allow-env --allow-read --allow-write --unstable-kv \
 *   examples/rendezvous_server.ts
 * ```
 *
 * Settings, from the environment:
 *
 * - `PORT` (default 8000; `0` for any free port) and `HOSTNAME` (default
 *   `127.0.0.1`, or `0.0.0.0` on Deno Deploy);
 * - `RENDEZVOUS_KV`: the path of a Deno KV database to share with other
 *   instances. On Deno Deploy (where `DENO_DEPLOY` is set) the app's own
 *   database is used; elsewhere, without it, this instance keeps its
 *   registrations in memory and stands alone;
 * - `RENDEZVOUS_POLL_MS`: also read the KV inbox this often, for instances
 *   in separate processes sharing a file (Deploy and one process need no
 *   polling: `kv.watch` wakes them);
 * - `RENDEZVOUS_HOST`: the host clients put in their URL, if a proxy in front
 *   rewrites `Host`.
 *
 * It prints `listening on ws://<host>:<port>/` and stops cleanly on SIGINT
 * or SIGTERM (Deno Deploy sends SIGINT before it stops an instance), taking
 * its registrations out of KV so no peer stays listed where it is not.
 *
 * @module
 */

import {
  kvEngine,
  memoryEngine,
  type RendezvousEngine,
  rendezvousHandler,
} from "../signaling/rendezvous_server.ts";

const env = (name: string) => Deno.env.get(name) || undefined;
// Deno Deploy sets both; Deploy Classic set only the second.
const onDeploy = env("DENO_DEPLOY") !== undefined ||
  env("DENO_DEPLOYMENT_ID") !== undefined;
const kvPath = env("RENDEZVOUS_KV");
const poll = env("RENDEZVOUS_POLL_MS");

let kv: Deno.Kv | undefined;
let engine: RendezvousEngine = memoryEngine();
if (kvPath !== undefined || onDeploy) {
  kv = await Deno.openKv(kvPath);
  engine = kvEngine(kv, {
    pollInterval: poll === undefined ? undefined : Number(poll),
  });
}

const handler = rendezvousHandler({ engine, host: env("RENDEZVOUS_HOST") });
const server = Deno.serve({
  hostname: env("HOSTNAME") ?? (onDeploy ? "0.0.0.0" : "127.0.0.1"),
  port: Number(env("PORT") ?? 8000),
  onListen({ hostname, port }) {
    console.log(`listening on ws://${hostname}:${port}/`);
  },
}, handler);

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await handler.close();
  await server.shutdown();
  kv?.close();
  Deno.exit(0);
}
Deno.addSignalListener("SIGINT", stop);
if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", stop);
