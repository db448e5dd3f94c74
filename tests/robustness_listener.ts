/**
 * A WebRTC-Direct listener program for `direct_robustness_cases.ts`: it
 * listens on 127.0.0.1 with libdatachannel, prints its address on a line of
 * its own, echoes the first `/echo/1.0.0` stream a dialer opens, then closes
 * its listener and transport while the dialer is still connected, prints
 * `closed`, and returns. Nothing stops libdatachannel or calls
 * `Deno.exit()`: the test checks the process ends by itself.
 *
 * A test fixture, not shipped.
 *
 * @module
 */

import { libdatachannel } from "../backends/libdatachannel.ts";
import { generateIdentity } from "../core/identity.ts";
import { WebRTCTransport } from "../core/transport.ts";

if (import.meta.main) {
  const transport = new WebRTCTransport({
    backend: await libdatachannel(),
    identity: await generateIdentity(),
  });
  const echoed = Promise.withResolvers<void>();
  transport.handle("/echo/1.0.0", async (stream) => {
    try {
      await stream.readable.pipeTo(stream.writable);
    } finally {
      echoed.resolve();
    }
  });
  const listener = await transport.listen(
    "/ip4/127.0.0.1/udp/0/webrtc-direct",
  );
  console.log(listener.addr);
  await echoed.promise;
  listener.close();
  await transport[Symbol.asyncDispose]();
  console.log("closed");
}
