/**
 * Echo over WebRTC-Direct on loopback.
 *
 * - `deno run -P=demo examples/echo.ts listen [--port N] [--backend NAME]`
 *   listens on 127.0.0.1 (port 0, any free one, by default), prints its
 *   dialable multiaddr on a line of its own, and echoes every `/echo/1.0.0`
 *   stream until stopped (Ctrl-C).
 * - `listen --port N --cert-file FILE --identity-file FILE` keeps the same
 *   multiaddr across restarts: the DTLS certificate (hence the certhash) and
 *   the libp2p key (hence the peer id) are loaded from the files, or made
 *   and saved there (mode 0600) on the first run, which needs
 *   `--allow-write` for them on top of `-P=demo`.
 * - `deno run -P=demo examples/echo.ts dial <multiaddr> --bytes N [--backend NAME]`
 *   opens `/echo/1.0.0`, sends N random bytes, checks the same bytes come
 *   back, prints the throughput, and exits 0 only then.
 * - With no command (`deno task demo`), a listener and a dialer run together
 *   in this process and echo 10 MiB.
 *
 * The backend is libdatachannel unless `--backend werift` is given (werift
 * can dial but not listen). No ICE server is used; everything is on
 * 127.0.0.1. The process exits by itself once everything is closed.
 */

import { parseArgs } from "node:util";
import type { PeerConnectionBackend } from "../core/backend.ts";
import { loadOrCreateCertificate } from "../core/certificate.ts";
import { generateIdentity, loadOrCreateIdentity } from "../core/identity.ts";
import { WebRTCTransport } from "../core/transport.ts";

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

async function transport(
  backend: string,
  identityFile?: string,
): Promise<WebRTCTransport> {
  const node = new WebRTCTransport({
    backend: await loadBackend(backend),
    identity: identityFile === undefined
      ? await generateIdentity()
      : await loadOrCreateIdentity(identityFile),
    bindAddress: "127.0.0.1",
  });
  node.handle(ECHO, (stream) => stream.readable.pipeTo(stream.writable));
  return node;
}

async function dial(
  node: WebRTCTransport,
  addr: string,
  size: number,
): Promise<number> {
  const started = performance.now();
  await using connection = await node.dial(addr);
  console.log(
    `connected to ${connection.remotePeer} in ` +
      `${(performance.now() - started).toFixed(0)} ms`,
  );
  const chunk = crypto.getRandomValues(new Uint8Array(Math.min(size, 65536)));
  const payload = new Uint8Array(size);
  for (let i = 0; i < size; i += chunk.length) {
    payload.set(chunk.subarray(0, size - i), i);
  }

  const echoStarted = performance.now();
  await using echo = await connection.newStream(ECHO);
  const writing = (async () => {
    const writer = echo.writable.getWriter();
    await writer.write(payload);
    await writer.close();
  })();
  let received = 0;
  let same = true;
  for await (const bytes of echo.readable) {
    for (let i = 0; i < bytes.length && same; i++) {
      same = bytes[i] === payload[received + i];
    }
    received += bytes.length;
  }
  await writing;
  const seconds = (performance.now() - echoStarted) / 1000;
  if (!same || received !== size) {
    console.error(`echo mismatch: sent ${size} bytes, got ${received} back`);
    return 1;
  }
  console.log(
    `echoed ${size} bytes byte-exact in ${seconds.toFixed(2)} s ` +
      `(${(size / seconds / 1e6).toFixed(1)} MB/s each way)`,
  );
  return 0;
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      bytes: { type: "string", default: String(10 * 1024 * 1024) },
      backend: { type: "string", default: "libdatachannel" },
      port: { type: "string", default: "0" },
      "cert-file": { type: "string" },
      "identity-file": { type: "string" },
    },
  });
  const [command, addr] = positionals;
  const size = Number(values.bytes);
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new Error(`--bytes must be a whole number, not ${values.bytes}`);
  }

  if (command === "listen") {
    const port = Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new Error(`--port must be from 0 to 65535, not ${values.port}`);
    }
    const certFile = values["cert-file"];
    const node = await transport(values.backend, values["identity-file"]);
    const listener = await node.listen(
      `/ip4/127.0.0.1/udp/${port}/webrtc-direct`,
      certFile === undefined
        ? {}
        : { certificate: await loadOrCreateCertificate(certFile) },
    );
    console.log(listener.addr);
    Deno.addSignalListener("SIGINT", () => {
      listener.close();
      node.close();
    });
    await listener.closed;
    return 0;
  }
  if (command === "dial") {
    if (!addr) throw new Error("usage: echo.ts dial <multiaddr> --bytes N");
    await using node = await transport(values.backend);
    return await dial(node, addr, size);
  }
  if (command !== undefined) throw new Error(`unknown command ${command}`);

  // Both ends in this process: a listener, and a dialer that finds it by the
  // address it prints, as a remote dialer would.
  await using server = await transport("libdatachannel");
  await using listener = await server.listen(
    "/ip4/127.0.0.1/udp/0/webrtc-direct",
  );
  console.log(`listening on ${listener.addr}`);
  await using client = await transport(values.backend);
  return await dial(client, listener.addr, size);
}

// No Deno.exit(): closing everything must be enough for the process to end.
Deno.exitCode = await main();
