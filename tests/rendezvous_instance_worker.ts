/**
 * One rendezvous instance in a worker: its own isolate, its own
 * `Deno.serve` on a free loopback port, and its own handle on a Deno KV
 * file shared with the other instances, as separate instances on Deno
 * Deploy share the app's database.
 *
 * Messages in: `{ kvPath }` to start, then anything to stop. Out:
 * `{ port }` once listening, `{ stopped: true }` once everything is closed.
 *
 * A test helper only; it is not shipped.
 *
 * @module
 */

import {
  kvEngine,
  rendezvousHandler,
  type RendezvousKv,
} from "../signaling/rendezvous_server.ts";

/** The worker scope, as much of it as this script uses. */
const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent) => void) | null;
  postMessage(message: unknown): void;
  close(): void;
};

scope.onmessage = async (event: MessageEvent<{ kvPath: string }>) => {
  const kv = await Deno.openKv(event.data.kvPath);
  // Deno.Kv is a RendezvousKv: checked here, where the unstable types are.
  const shared: RendezvousKv = kv;
  const handler = rendezvousHandler({
    engine: kvEngine(shared, { heartbeatInterval: 2_000 }),
  });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    handler,
  );
  scope.onmessage = async () => {
    await handler.close();
    await server.shutdown();
    kv.close();
    scope.postMessage({ stopped: true });
    scope.close();
  };
  scope.postMessage({ port: server.addr.port });
};
