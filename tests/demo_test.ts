/**
 * The README's first command keeps working: the demo runs a listener and a
 * dialer over WebRTC-Direct on loopback, echoes byte-exact, and the process
 * exits by itself with code 0 (run in a child process with the demo's own
 * permission set).
 */

import { match, strictEqual } from "node:assert/strict";

Deno.test("demo: listener and dialer echo over WebRTC-Direct and the process exits by itself", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "-P=demo",
      "--config",
      new URL("../deno.json", import.meta.url).pathname,
      new URL("../examples/echo.ts", import.meta.url).pathname,
      "--bytes",
      "1048576",
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const { code, signal, stdout, stderr } = await child.output().finally(() =>
    clearTimeout(timer)
  );
  const out = new TextDecoder().decode(stdout);
  const err = new TextDecoder().decode(stderr);
  strictEqual(signal, null, `the demo did not exit within 60 s\n${out}${err}`);
  strictEqual(code, 0, `${out}${err}`);
  match(
    out,
    /^listening on \/ip4\/127\.0\.0\.1\/udp\/\d+\/webrtc-direct\/certhash\/uEi/m,
  );
  match(out, /echoed 1048576 bytes byte-exact/);
});
