/**
 * The listener's DTLS certificate: generation, PEM import and export, and
 * the owner-only file that keeps the certhash across restarts (creation,
 * races, renewal near expiry, corrupt and foreign files).
 */

import {
  deepEqual,
  equal,
  notDeepEqual,
  ok,
  rejects,
  throws,
} from "node:assert/strict";
import {
  exportCertificate,
  generateCertificate,
  importCertificate,
  InvalidCertificateError,
  loadOrCreateCertificate,
} from "../core/certificate.ts";
import { P2prtcError } from "../core/errors.ts";
import { random } from "./random.ts";

const DAY = 86_400_000;
const isWindows = Deno.build.os === "windows";

async function withTempDir(run: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "p2prtc_certificate_" });
  try {
    await run(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function isInvalidCertificate(path?: string) {
  return (error: unknown) =>
    error instanceof InvalidCertificateError &&
    error instanceof P2prtcError &&
    error.code === "ERR_INVALID_CERTIFICATE" &&
    error.path === path;
}

function base64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

function derOf(pem: string): Uint8Array {
  const body = pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
  return Uint8Array.from(atob(body), (c) => c.charCodeAt(0));
}

function pemOf(label: string, bytes: Uint8Array): string {
  return `-----BEGIN ${label}-----\n${base64(bytes)}\n-----END ${label}-----\n`;
}

Deno.test("a generated certificate is ECDSA P-256, valid for the days asked", async () => {
  const before = Date.now();
  const certificate = await generateCertificate({ days: 3 });
  equal(certificate.fingerprint.algorithm, "sha-256");
  equal(certificate.fingerprint.digest.length, 32);
  const expires = certificate.expires!;
  // Whole seconds, as the certificate states them.
  equal(expires % 1000, 0);
  ok(expires > before + 3 * DAY - 2000 && expires <= Date.now() + 3 * DAY);
  const digest = new Uint8Array(
    await crypto.subtle.digest(
      "SHA-256",
      new Uint8Array(derOf(certificate.pem.certificate)),
    ),
  );
  deepEqual(certificate.fingerprint.digest, digest);
  for (const days of [0, -1, Number.NaN, 40_000]) {
    await rejects(generateCertificate({ days }), RangeError);
  }
});

Deno.test("importCertificate reads back both PEM forms", async () => {
  const original = await generateCertificate();
  const fromPair = await importCertificate(original.pem);
  deepEqual(fromPair, original);
  const text = exportCertificate(original);
  ok(text.startsWith("-----BEGIN CERTIFICATE-----"));
  ok(text.includes("-----BEGIN PRIVATE KEY-----"));
  deepEqual(await importCertificate(text), original);
  // Line breaks and surrounding text do not matter; the result is clean PEM.
  const body = base64(derOf(original.pem.certificate)).replace(
    /(.{10})/g,
    "$1\n",
  );
  const messy = `comment\r\n${
    original.pem.privateKey.replaceAll("\n", "\r\n")
  }\n\n-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----trailer`;
  deepEqual(await importCertificate(messy), original);
});

Deno.test("importCertificate refuses what is not a matching P-256 pair", async () => {
  const a = await generateCertificate();
  const b = await generateCertificate();
  const cases: [string, Parameters<typeof importCertificate>[0]][] = [
    ["not PEM", "hello"],
    ["no key", a.pem.certificate],
    ["no certificate", a.pem.privateKey],
    ["two certificates", a.pem.certificate + b.pem.certificate],
    ["another certificate's key", {
      certificate: a.pem.certificate,
      privateKey: b.pem.privateKey,
    }],
    ["a SEC1 key", {
      certificate: a.pem.certificate,
      privateKey: a.pem.privateKey.replaceAll("PRIVATE KEY", "EC PRIVATE KEY"),
    }],
    ["not base64", {
      certificate:
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----",
      privateKey: a.pem.privateKey,
    }],
    ["a key as the certificate", {
      certificate: pemOf("CERTIFICATE", derOf(a.pem.privateKey)),
      privateKey: a.pem.privateKey,
    }],
    ["a certificate as the key", {
      certificate: a.pem.certificate,
      privateKey: pemOf("PRIVATE KEY", derOf(a.pem.certificate)),
    }],
    ["not an object", 42 as unknown as string],
    ["null fields", {
      certificate: null,
      privateKey: null,
    } as unknown as { certificate: string; privateKey: string }],
  ];
  for (const [what, input] of cases) {
    await rejects(importCertificate(input), isInvalidCertificate(), what);
  }
  const sec1 = await importCertificate({
    certificate: a.pem.certificate,
    privateKey: a.pem.privateKey.replaceAll("PRIVATE KEY", "EC PRIVATE KEY"),
  }).catch((error: Error) => error.message);
  ok(String(sec1).includes("openssl pkcs8"), String(sec1));
  // A P-384 key is refused as a key, not mistaken for the certificate's.
  const p384 = await crypto.subtle.generateKey(
    { name: "ECDSA", namedCurve: "P-384" },
    true,
    ["sign"],
  );
  const pkcs8 = new Uint8Array(
    await crypto.subtle.exportKey("pkcs8", p384.privateKey),
  );
  await rejects(
    importCertificate({
      certificate: a.pem.certificate,
      privateKey: pemOf("PRIVATE KEY", pkcs8),
    }),
    (error: Error) =>
      isInvalidCertificate()(error) && error.message.includes("P-256"),
  );
});

Deno.test("importCertificate: corrupted and cut certificates fail typed, seeded", async () => {
  const { pem } = await generateCertificate();
  const der = derOf(pem.certificate);
  const next = random(23);
  let accepted = 0;
  for (let round = 0; round < 300; round++) {
    const bytes = der.slice();
    const mode = round % 3;
    let cut = bytes;
    if (mode === 0) {
      bytes[Math.floor(next() * bytes.length)] ^= 1 + Math.floor(next() * 255);
    } else if (mode === 1) {
      cut = bytes.subarray(0, Math.floor(next() * bytes.length));
    } else {
      for (let i = 0; i < 8; i++) {
        bytes[Math.floor(next() * bytes.length)] = next() * 256;
      }
    }
    try {
      const imported = await importCertificate({
        certificate: pemOf("CERTIFICATE", cut),
        privateKey: pem.privateKey,
      });
      // Only bytes outside what is read (serial, names, signature) may
      // change and still give a certificate, and then a different hash.
      accepted++;
      notDeepEqual(imported.fingerprint.digest, new Uint8Array(32));
    } catch (error) {
      ok(isInvalidCertificate()(error), `round ${round}: ${error}`);
    }
  }
  ok(accepted < 300);
});

Deno.test("loadOrCreateCertificate creates an owner-only file and loads it again", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/cert.pem`;
    const first = await loadOrCreateCertificate(path);
    const text = await Deno.readTextFile(path);
    equal(text, exportCertificate(first));
    if (!isWindows) equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    // A year by default.
    ok(first.expires! > Date.now() + 364 * DAY);
    const second = await loadOrCreateCertificate(path);
    deepEqual(second, first);
    const viaUrl = await loadOrCreateCertificate(
      new URL(`file://${path}`),
    );
    deepEqual(viaUrl.fingerprint, first.fingerprint);
    // Nothing but the file is left behind.
    const names = [];
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    deepEqual(names, ["cert.pem"]);
  });
});

Deno.test("loadOrCreateCertificate: processes starting at once share one certificate", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/cert.pem`;
    const all = await Promise.all(
      Array.from({ length: 6 }, () => loadOrCreateCertificate(path)),
    );
    for (const certificate of all) {
      deepEqual(certificate.fingerprint, all[0].fingerprint);
    }
    deepEqual(
      (await importCertificate(await Deno.readTextFile(path))).fingerprint,
      all[0].fingerprint,
    );
  });
});

Deno.test("loadOrCreateCertificate renews a certificate near its expiry", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/cert.pem`;
    const short = await loadOrCreateCertificate(path, {
      days: 10,
      renewWithinDays: 1,
    });
    // Ten days left is more than nine: kept.
    deepEqual(
      await loadOrCreateCertificate(path, { days: 10, renewWithinDays: 9 }),
      short,
    );
    // Ten days left is within twenty: replaced, file included.
    const renewed = await loadOrCreateCertificate(path, {
      days: 30,
      renewWithinDays: 20,
    });
    notDeepEqual(renewed.fingerprint, short.fingerprint);
    ok(renewed.expires! > Date.now() + 29 * DAY);
    equal(await Deno.readTextFile(path), exportCertificate(renewed));
    if (!isWindows) equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    deepEqual(
      await loadOrCreateCertificate(path, { days: 30, renewWithinDays: 20 }),
      renewed,
    );
    for (const options of [{ renewWithinDays: 365 }, { renewWithinDays: -1 }]) {
      await rejects(loadOrCreateCertificate(path, options), RangeError);
    }
  });
});

Deno.test("loadOrCreateCertificate reports a corrupt or foreign file and leaves it alone", async () => {
  await withTempDir(async (dir) => {
    const a = await generateCertificate();
    const b = await generateCertificate();
    const files: [string, Uint8Array | string][] = [
      ["garbage.pem", "not a certificate\n"],
      ["binary.pem", new Uint8Array([0xff, 0xfe, 0x00, 0x80])],
      ["empty.pem", ""],
      ["wrong-key.pem", a.pem.certificate + b.pem.privateKey],
      ["cut.pem", exportCertificate(a).slice(0, 300)],
    ];
    for (const [name, content] of files) {
      const path = `${dir}/${name}`;
      if (typeof content === "string") await Deno.writeTextFile(path, content);
      else await Deno.writeFile(path, content);
      const before = await Deno.readFile(path);
      await rejects(
        loadOrCreateCertificate(path),
        (error: Error) =>
          isInvalidCertificate(path)(error) && error.message.includes(path),
        name,
      );
      deepEqual(await Deno.readFile(path), before, name);
    }
    // A directory in the way is an I/O error, not a certificate error.
    await Deno.mkdir(`${dir}/dir.pem`);
    await rejects(
      loadOrCreateCertificate(`${dir}/dir.pem`),
      (error) => !(error instanceof InvalidCertificateError),
    );
  });
});

Deno.test("InvalidCertificateError carries its code and path", () => {
  const error = new InvalidCertificateError("bad", "/x/cert.pem");
  equal(error.code, "ERR_INVALID_CERTIFICATE");
  equal(error.name, "InvalidCertificateError");
  equal(error.path, "/x/cert.pem");
  ok(error.message.includes("/x/cert.pem"));
  throws(() => {
    throw error;
  }, P2prtcError);
});
