/**
 * The libdatachannel backend: the conformance suite with libdatachannel on
 * both sides, and what is particular to libdatachannel (the process exits
 * by itself, it starts again after `cleanup()`, it refuses what would abort
 * the process natively, the SDP it announces).
 *
 * Registered by `native_test.ts`, the one test file that may load
 * node-datachannel (see there why).
 *
 * @module
 */

import {
  deepStrictEqual,
  ok,
  rejects,
  strictEqual,
  throws,
} from "node:assert/strict";
import { libdatachannel } from "../backends/libdatachannel.ts";
import {
  FrameTooLargeError,
  NotSupportedError,
  P2prtcError,
} from "../core/errors.ts";
import { Closer, connect, LOOPBACK } from "./conformance/connect.ts";
import { conformanceSuite } from "./conformance/suite.ts";

const NOTHING_OPEN = { peerConnections: 0, dataChannels: 0 };

conformanceSuite(
  "libdatachannel",
  async () => ({ a: await libdatachannel(), b: await libdatachannel() }),
  {
    settle: (backend, signal) =>
      (backend as Awaited<ReturnType<typeof libdatachannel>>).idle(signal),
    vanishingPeer: {
      module: new URL("../backends/libdatachannel.ts", import.meta.url),
      factory: "libdatachannel",
      permissions: ["--allow-read", "--allow-ffi"],
      // Measured about 14 s with data in flight (SCTP retransmission limit).
      boundMs: 25_000,
    },
  },
);

Deno.test("libdatachannel: deno run exits by itself once everything is closed", async () => {
  const command = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--config",
      new URL("../deno.json", import.meta.url).pathname,
      // The permissions the module documentation gives, and no more.
      "--allow-read",
      "--allow-ffi",
      new URL("./libdatachannel_exit.ts", import.meta.url).pathname,
    ],
    stdout: "piped",
    stderr: "piped",
  });
  const child = command.spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  const { code, signal, stdout, stderr } = await child.output().finally(() =>
    clearTimeout(timer)
  );
  const text = new TextDecoder().decode(stderr);
  strictEqual(signal, null, `killed: it did not exit within 20 s\n${text}`);
  strictEqual(code, 0, text);
  strictEqual(new TextDecoder().decode(stdout).trim(), "received 42 bytes");
});

Deno.test("libdatachannel: a connection works after cleanup() ran", async () => {
  const backend = await libdatachannel();
  for (let round = 0; round < 3; round++) {
    const closer = new Closer();
    try {
      const { a0, b0 } = await connect(backend, backend, closer, {
        signal: AbortSignal.timeout(10_000),
      });
      const received = new Promise<Uint8Array>((resolve) => {
        b0.onmessage = (data) => resolve(data.slice());
      });
      a0.send(Uint8Array.of(round));
      deepStrictEqual(await received, Uint8Array.of(round));
    } finally {
      closer.closeAll();
    }
    // Back to zero means the last connection's close ran cleanup().
    await backend.idle(AbortSignal.timeout(10_000));
    deepStrictEqual(backend.openHandles(), NOTHING_OPEN);
  }
});

Deno.test("libdatachannel: refuses what libdatachannel would abort the process on", async () => {
  const backend = await libdatachannel();
  const pc = backend.createPeerConnection(LOOPBACK);
  try {
    // No data channel: libdatachannel throws an uncaught C++ exception.
    await rejects(pc.createOffer(), NotSupportedError);
    // An answer without a remote offer.
    await rejects(pc.createAnswer(), P2prtcError);
    pc.createDataChannel("", { negotiated: true, id: 0 });
    const offer = await pc.createOffer();
    // Credentials libjuice refuses.
    await rejects(
      pc.setLocalDescription(offer, { ufrag: "a b", pwd: "x".repeat(22) }),
      (error: P2prtcError) => error.code === "ERR_INVALID_ICE_CREDENTIAL",
    );
    await rejects(
      pc.setLocalDescription(offer, { ufrag: "abcd", pwd: "short" }),
      (error: P2prtcError) => error.code === "ERR_INVALID_ICE_CREDENTIAL",
    );
    throws(
      () => pc.createDataChannel("", { negotiated: true }),
      P2prtcError,
    );
  } finally {
    pc.close();
  }
  await rejects(pc.createOffer(), P2prtcError);
  await backend.idle(AbortSignal.timeout(10_000));
});

Deno.test("libdatachannel: announces 16384-byte messages and refuses bigger ones", async () => {
  const backend = await libdatachannel();
  const closer = new Closer();
  try {
    const { a, a0 } = await connect(backend, backend, closer, {
      signal: AbortSignal.timeout(10_000),
    });
    ok(/^a=max-message-size:16384\r?$/m.test(a.localDescription!.sdp));
    throws(() => a0.send(new Uint8Array(16385)), FrameTooLargeError);
    a0.send(new Uint8Array(16384));
  } finally {
    closer.closeAll();
  }
  await backend.idle(AbortSignal.timeout(10_000));
});

Deno.test("libdatachannel: ICE server entries are checked and converted", async () => {
  const backend = await libdatachannel();
  const code = (error: P2prtcError) => error.code === "ERR_INVALID_ICE_SERVER";
  throws(
    () => backend.createPeerConnection({ iceServers: [{ urls: "http://x" }] }),
    code,
  );
  throws(
    () =>
      backend.createPeerConnection({
        iceServers: [{ urls: "turn:127.0.0.1" }],
      }),
    code,
  );
  throws(
    () =>
      backend.createPeerConnection({
        iceServers: [{ urls: "stuns:127.0.0.1" }],
      }),
    NotSupportedError,
  );
  // Accepted, never contacted: nothing is gathered before a description.
  const pc = backend.createPeerConnection({
    iceServers: [
      { urls: ["stun:127.0.0.1:3478", "stun:[::1]"] },
      {
        urls: "turn:127.0.0.1:3478?transport=tcp",
        username: "user:with@odd/chars",
        credential: "pass word",
      },
    ],
  });
  pc.close();
  await backend.idle(AbortSignal.timeout(10_000));
});
