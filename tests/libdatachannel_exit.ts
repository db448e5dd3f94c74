/**
 * Connects two peer connections of the libdatachannel backend, sends one
 * message, closes both and returns, without calling anything to stop
 * libdatachannel: `libdatachannel_cases.ts` runs it with the documented
 * minimal permissions and checks that the process exits by itself.
 *
 * A test fixture, not shipped.
 *
 * @module
 */

import { libdatachannel } from "../backends/libdatachannel.ts";
import { Closer, connect } from "./conformance/connect.ts";

if (import.meta.main) {
  const backend = await libdatachannel();
  const closer = new Closer();
  const { a0, b0 } = await connect(backend, backend, closer, {
    signal: AbortSignal.timeout(10_000),
  });
  const received = new Promise<number>((resolve) => {
    b0.onmessage = (data) => resolve(data.byteLength);
  });
  a0.send(new Uint8Array(42));
  console.log(`received ${await received} bytes`);
  closer.closeAll();
}
