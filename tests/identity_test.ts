import type { PeerId as Libp2pPeerId } from "@libp2p/interface";
import {
  deepEqual,
  equal,
  notEqual,
  ok,
  rejects,
  throws,
} from "node:assert/strict";
import { InvalidPrivateKeyError, P2prtcError } from "../core/errors.ts";
import {
  exportIdentity,
  generateIdentity,
  importIdentity,
  libp2pPrivateKey,
  loadOrCreateIdentity,
} from "../core/identity.ts";

const isWindows = Deno.build.os === "windows";

async function withTempDir(run: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "p2prtc_identity_" });
  try {
    await run(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("generateIdentity makes an Ed25519 key and its peer ID", async () => {
  const identity = await generateIdentity();
  equal(identity.privateKey.type, "Ed25519");
  equal(identity.peerId.type, "Ed25519");
  // An Ed25519 peer ID is an identity multihash, base58btc: 12D3KooW...
  ok(identity.peerId.toString().startsWith("12D3KooW"));
  ok(
    (identity.peerId as Libp2pPeerId).publicKey?.equals(
      libp2pPrivateKey(identity).publicKey,
    ),
  );
  const other = await generateIdentity();
  notEqual(other.peerId.toString(), identity.peerId.toString());
});

Deno.test("exportIdentity writes the libp2p PrivateKey protobuf", async () => {
  const identity = await generateIdentity();
  const bytes = exportIdentity(identity);
  // Type (field 1) = Ed25519 (1); Data (field 2) = 64 bytes: seed + public.
  equal(bytes.length, 68);
  deepEqual([...bytes.subarray(0, 4)], [0x08, 0x01, 0x12, 0x40]);
  const again = importIdentity(bytes);
  ok(again.peerId.equals(identity.peerId));
  ok(libp2pPrivateKey(again).equals(libp2pPrivateKey(identity)));
});

Deno.test("importIdentity rejects bytes that are not a key", () => {
  for (
    const bytes of [
      new Uint8Array(0),
      new Uint8Array([1, 2, 3, 4, 5]),
      // Ed25519 type, but a 3-byte key.
      new Uint8Array([0x08, 0x01, 0x12, 0x03, 1, 2, 3]),
      // An unknown key type.
      new Uint8Array([0x08, 0x09, 0x12, 0x01, 0]),
    ]
  ) {
    throws(() => importIdentity(bytes), (error) => {
      ok(error instanceof InvalidPrivateKeyError);
      ok(error instanceof P2prtcError);
      equal(error.code, "ERR_INVALID_PRIVATE_KEY");
      equal(error.path, undefined);
      ok(error.cause !== undefined);
      return true;
    });
  }
});

Deno.test("loadOrCreateIdentity creates a private file and reloads the same peer ID", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/peer.key`;
    const created = await loadOrCreateIdentity(path);
    const stat = await Deno.stat(path);
    equal(stat.size, 68);
    if (!isWindows) equal(stat.mode! & 0o777, 0o600);
    const stored = await Deno.readFile(path);

    const loaded = await loadOrCreateIdentity(path);
    equal(loaded.peerId.toString(), created.peerId.toString());
    ok(libp2pPrivateKey(loaded).equals(libp2pPrivateKey(created)));
    // Loading leaves the file as it was.
    deepEqual(await Deno.readFile(path), stored);
    // Nothing but the key file is left behind.
    const names = [];
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    deepEqual(names, ["peer.key"]);
  });
});

Deno.test("loadOrCreateIdentity accepts a file URL", async () => {
  await withTempDir(async (dir) => {
    const url = new URL(`file://${dir}/peer.key`);
    const created = await loadOrCreateIdentity(url);
    const loaded = await loadOrCreateIdentity(`${dir}/peer.key`);
    ok(loaded.peerId.equals(created.peerId));
  });
});

Deno.test("loadOrCreateIdentity loads a key written by exportIdentity", async () => {
  await withTempDir(async (dir) => {
    const identity = await generateIdentity();
    await Deno.writeFile(`${dir}/peer.key`, exportIdentity(identity));
    const loaded = await loadOrCreateIdentity(`${dir}/peer.key`);
    ok(loaded.peerId.equals(identity.peerId));
  });
});

Deno.test("loadOrCreateIdentity: concurrent callers agree on one key", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/peer.key`;
    const identities = await Promise.all(
      Array.from({ length: 8 }, () => loadOrCreateIdentity(path)),
    );
    const ids = new Set(identities.map((i) => i.peerId.toString()));
    equal(ids.size, 1);
    equal(
      importIdentity(await Deno.readFile(path)).peerId.toString(),
      [...ids][0],
    );
    const names = [];
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    deepEqual(names, ["peer.key"]);
  });
});

Deno.test("loadOrCreateIdentity: a corrupt key file is a typed error and is kept", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/peer.key`;
    const corrupt = exportIdentity(await generateIdentity()).subarray(0, 30);
    for (const content of [corrupt, new Uint8Array(0)]) {
      await Deno.writeFile(path, content);
      await rejects(loadOrCreateIdentity(path), (error) => {
        ok(error instanceof InvalidPrivateKeyError);
        equal(error.code, "ERR_INVALID_PRIVATE_KEY");
        equal(error.path, path);
        ok(error.message.includes(path));
        ok(error.cause !== undefined);
        return true;
      });
      deepEqual(await Deno.readFile(path), content);
    }
  });
});

Deno.test("loadOrCreateIdentity passes I/O errors through", async () => {
  await withTempDir(async (dir) => {
    // A directory where the key should be: not a key, not absent either.
    await Deno.mkdir(`${dir}/peer.key`);
    await rejects(
      loadOrCreateIdentity(`${dir}/peer.key`),
      (error) => !(error instanceof InvalidPrivateKeyError),
    );
    // A missing parent directory: the key cannot be stored.
    await rejects(
      loadOrCreateIdentity(`${dir}/missing/peer.key`),
      Deno.errors.NotFound,
    );
  });
});
