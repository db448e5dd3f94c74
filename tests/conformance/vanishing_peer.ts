/**
 * The answering side of the "vanishing peer" case, run as its own process so
 * that the test can kill it with SIGKILL: no SCTP ABORT, no DTLS alert,
 * nothing but silence.
 *
 * Usage: `deno run <permissions> vanishing_peer.ts <module URL> <factory>`,
 * where `<factory>` is a function exported by the module that returns a
 * backend (or a promise of one). It speaks JSON lines: it reads `offer` and
 * `candidate` messages on stdin, writes `answer` and `candidate` messages on
 * stdout, and echoes every message it receives on the negotiated channel 0.
 *
 * A test helper, not shipped.
 *
 * @module
 */

import type {
  IceCandidate,
  PeerConnectionBackend,
} from "../../core/backend.ts";
import { isLoopback, LOOPBACK } from "./connect.ts";

/** One line of the protocol between the test and this process. */
export type PeerMessage =
  | { offer: string }
  | { answer: string }
  | { candidate: IceCandidate };

if (import.meta.main) {
  const [moduleUrl, factory] = Deno.args;
  const module = await import(moduleUrl);
  const backend: PeerConnectionBackend = await module[factory]();
  const pc = backend.createPeerConnection(LOOPBACK);
  const encoder = new TextEncoder();
  const write = (message: PeerMessage) =>
    Deno.stdout.writeSync(encoder.encode(JSON.stringify(message) + "\n"));

  pc.onicecandidate = (candidate) => {
    if (candidate !== null && isLoopback(candidate)) write({ candidate });
  };
  const channel = pc.createDataChannel("", { negotiated: true, id: 0 });
  channel.onmessage = (data) => {
    try {
      channel.send(data);
    } catch {
      // The test sees the missing echo.
    }
  };

  let buffered = "";
  for await (
    const text of Deno.stdin.readable.pipeThrough(new TextDecoderStream())
  ) {
    buffered += text;
    let newline: number;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const message = JSON.parse(buffered.slice(0, newline)) as PeerMessage;
      buffered = buffered.slice(newline + 1);
      if ("offer" in message) {
        await pc.setRemoteDescription({ type: "offer", sdp: message.offer });
        await pc.setLocalDescription(await pc.createAnswer());
        write({ answer: pc.localDescription!.sdp });
      } else if ("candidate" in message) {
        await pc.addIceCandidate(message.candidate);
      }
    }
  }
  // The test closed stdin without killing us: leave cleanly.
  pc.close();
}
