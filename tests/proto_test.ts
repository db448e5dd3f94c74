/**
 * The generated protobuf code is what protons makes from the .proto sources:
 * regenerating it in a temporary folder gives the committed files byte for
 * byte. Run `deno task proto` after editing a .proto file.
 */

import { strictEqual } from "node:assert/strict";
import { Message } from "../proto/message.ts";
import { SignalingMessage } from "../proto/signaling.ts";

const PROTOS = ["message", "signaling", "identify"];

Deno.test("proto: regenerating with protons changes nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2prtc-proto-" });
  try {
    for (const name of PROTOS) {
      await Deno.copyFile(
        new URL(`../proto/${name}.proto`, import.meta.url),
        `${dir}/${name}.proto`,
      );
    }
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--allow-read",
        `--allow-write=${dir}`,
        "--allow-env",
        "npm:protons@9.0.2",
        ...PROTOS.map((name) => `${dir}/${name}.proto`),
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    strictEqual(code, 0, new TextDecoder().decode(stderr));
    for (const name of PROTOS) {
      const fresh = await Deno.readTextFile(`${dir}/${name}.ts`);
      const committed = await Deno.readTextFile(
        new URL(`../proto/${name}.ts`, import.meta.url),
      );
      strictEqual(fresh, committed, `proto/${name}.ts is stale`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("proto: enum zero values are written (FIN and SDP_OFFER)", () => {
  // Explicit presence: a proto3 encoder without `optional` would drop them.
  strictEqual(
    Array.from(Message.encode({ flag: Message.Flag.FIN })).join(","),
    "8,0",
  );
  strictEqual(
    Array.from(
      SignalingMessage.encode({ type: SignalingMessage.Type.SDP_OFFER }),
    ).join(","),
    "8,0",
  );
});
