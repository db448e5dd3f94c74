import assert from "node:assert/strict";
import { multiaddr } from "@multiformats/multiaddr";
import { bases } from "multiformats/basics";
import { base58btc } from "multiformats/bases/base58";
import { CID } from "multiformats/cid";
import * as Digest from "multiformats/hashes/digest";
import type { CertificateFingerprint } from "../core/backend.ts";
import { encodeCerthash, fingerprintToMultihash } from "../core/certhash.ts";
import {
  InvalidFingerprintError,
  InvalidMultiaddrError,
  UnresolvedMultiaddrError,
  UnsupportedCerthashError,
} from "../core/errors.ts";
import {
  parseWebRTCDirectMultiaddr,
  webRTCDirectMultiaddr,
} from "../core/multiaddr.ts";
import { random, randomBytes } from "./random.ts";

const CERTHASH = "uEiAw_J9GnCB0Gd_dCqtfJ6hslzyU5AVI25N1zKLpFZc7mQ";
const PEER = "12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf";
const RSA_PEER = "QmWjz6xb8v9K4KnYEwP5Yk75k5mMBCehzWFLCvvQpYxF3d";
const ADDRESS = `/ip4/192.0.2.1/udp/4001/webrtc-direct/certhash/${CERTHASH}`;
const SERVER_DIGEST = Uint8Array.from(
  "30fc9f469c207419dfdd0aab5f27a86c973c94e40548db9375cca2e915973b99"
    .match(/../g)!,
  (byte) => parseInt(byte, 16),
);
const SERVER: CertificateFingerprint = {
  algorithm: "sha-256",
  digest: SERVER_DIGEST,
};
const OTHER: CertificateFingerprint = {
  algorithm: "sha-256",
  digest: new Uint8Array(32).fill(9),
};

function invalid(addr: unknown, message?: RegExp): void {
  assert.throws(
    () => parseWebRTCDirectMultiaddr(addr as string),
    (error: unknown) =>
      error instanceof InvalidMultiaddrError &&
      error.code === "ERR_INVALID_MULTIADDR" &&
      (message === undefined || message.test(error.message)),
    String(addr),
  );
}

Deno.test("multiaddr: an IPv4 address with a peer id", () => {
  assert.deepEqual(parseWebRTCDirectMultiaddr(`${ADDRESS}/p2p/${PEER}`), {
    host: "192.0.2.1",
    family: 4,
    port: 4001,
    certhashes: [SERVER],
    peerId: PEER,
  });
});

Deno.test("multiaddr: an IPv6 address without a peer id", () => {
  const parsed = parseWebRTCDirectMultiaddr(
    `/ip6/2001:DB8:0:0::1/udp/65535/webrtc-direct/certhash/${CERTHASH}`,
  );
  assert.deepEqual(parsed, {
    host: "2001:db8::1",
    family: 6,
    port: 65535,
    certhashes: [SERVER],
  });
  assert.ok(!("peerId" in parsed));
});

Deno.test("multiaddr: string, bytes and Multiaddr objects parse alike", () => {
  const text = `${ADDRESS}/p2p/${PEER}`;
  const expected = parseWebRTCDirectMultiaddr(text);
  assert.deepEqual(parseWebRTCDirectMultiaddr(multiaddr(text)), expected);
  assert.deepEqual(parseWebRTCDirectMultiaddr(multiaddr(text).bytes), expected);
});

Deno.test("multiaddr: several certhashes, in order; the first is the one to use", () => {
  const parsed = parseWebRTCDirectMultiaddr(
    `${ADDRESS}/certhash/${encodeCerthash(OTHER)}`,
  );
  assert.deepEqual(parsed.certhashes, [SERVER, OTHER]);
});

Deno.test("multiaddr: certhashes in any multibase decode", () => {
  const multihash = fingerprintToMultihash(SERVER);
  for (
    const base of [bases.base58btc, bases.base32, bases.base16, bases.base36]
  ) {
    const parsed = parseWebRTCDirectMultiaddr(
      `/ip4/192.0.2.1/udp/4001/webrtc-direct/certhash/${
        base.encode(multihash)
      }`,
    );
    assert.deepEqual(parsed.certhashes, [SERVER], base.name);
  }
});

Deno.test("multiaddr: a certhash of another hash is skipped if a sha-256 one exists", () => {
  const sha512 = bases.base64url.encode(
    new Uint8Array([0x13, 0x40, ...new Uint8Array(64)]),
  );
  const parsed = parseWebRTCDirectMultiaddr(
    `/ip4/192.0.2.1/udp/4001/webrtc-direct/certhash/${sha512}/certhash/${CERTHASH}`,
  );
  assert.deepEqual(parsed.certhashes, [SERVER]);
  assert.throws(
    () =>
      parseWebRTCDirectMultiaddr(
        `/ip4/192.0.2.1/udp/4001/webrtc-direct/certhash/${sha512}`,
      ),
    (error: unknown) =>
      error instanceof UnsupportedCerthashError && error.hashCode === 0x13,
  );
});

Deno.test("multiaddr: peer ids in base58 and CID form, canonical base58 out", () => {
  assert.equal(
    parseWebRTCDirectMultiaddr(`${ADDRESS}/p2p/${RSA_PEER}`).peerId,
    RSA_PEER,
  );
  const multihash = Digest.decode(base58btc.baseDecode(PEER));
  const cid = CID.createV1(0x72, multihash);
  for (const text of [cid.toString(), cid.toString(bases.base36)]) {
    assert.equal(
      parseWebRTCDirectMultiaddr(`${ADDRESS}/p2p/${text}`).peerId,
      PEER,
      text,
    );
  }
});

Deno.test("multiaddr: invalid peer ids are refused", () => {
  const multihash = Digest.decode(base58btc.baseDecode(PEER));
  const notAKey = CID.createV1(0x55, multihash).toString(); // raw, not libp2p-key
  const bigIdentity = base58btc.baseEncode(
    new Uint8Array([0x00, 43, ...new Uint8Array(43)]),
  );
  for (
    const peer of [
      "notapeer",
      PEER.slice(0, -1),
      `${PEER}x`,
      "Qm",
      "1",
      notAKey,
      bigIdentity,
      "bafy" + "a".repeat(10),
    ]
  ) {
    invalid(`${ADDRESS}/p2p/${peer}`, /peer id/);
  }
});

Deno.test("multiaddr: DNS names are refused with a typed 'resolve first' error", () => {
  for (const dns of ["dns", "dns4", "dns6", "dnsaddr"]) {
    assert.throws(
      () =>
        parseWebRTCDirectMultiaddr(
          `/${dns}/example.com/udp/4001/webrtc-direct/certhash/${CERTHASH}`,
        ),
      (error: unknown) =>
        error instanceof UnresolvedMultiaddrError &&
        error.code === "ERR_MULTIADDR_NOT_RESOLVED" &&
        /resolve/.test(error.message),
      dns,
    );
  }
});

Deno.test("multiaddr: anything but the WebRTC-Direct shape is refused", () => {
  invalid("/", /empty/);
  invalid("");
  invalid("/ip4/192.0.2.1");
  invalid("/ip4/192.0.2.1/udp/4001");
  invalid("/ip4/192.0.2.1/udp/4001/webrtc-direct", /certhash/);
  invalid(`/ip4/192.0.2.1/udp/4001/certhash/${CERTHASH}`, /webrtc-direct/);
  invalid(`/ip4/192.0.2.1/tcp/4001/webrtc-direct/certhash/${CERTHASH}`);
  invalid(`/ip4/192.0.2.1/udp/4001/webrtc/certhash/${CERTHASH}`);
  invalid(`/ip4/192.0.2.1/udp/4001/quic-v1/webtransport/certhash/${CERTHASH}`);
  invalid(`/udp/4001/webrtc-direct/certhash/${CERTHASH}`, /ip4 or \/ip6/);
  invalid(
    `/ip6zone/eth0/ip6/fe80::1/udp/4001/webrtc-direct/certhash/${CERTHASH}`,
  );
  invalid(`/p2p/${PEER}/p2p-circuit/webrtc`);
  invalid(`/ip4/192.0.2.1/udp/0/webrtc-direct/certhash/${CERTHASH}`, /port/);
  invalid(`${ADDRESS}/p2p/${PEER}/p2p-circuit`, /cannot follow/);
  invalid(`${ADDRESS}/p2p/${PEER}/certhash/${CERTHASH}`, /cannot follow/);
  invalid(`${ADDRESS}/p2p/${PEER}/p2p/${PEER}`, /cannot follow/);
  invalid(`${ADDRESS}/webrtc-direct`, /cannot follow/);
  invalid(`/ip4/192.0.2.1/udp/4001/webrtc-direct/p2p/${PEER}`, /certhash/);
  invalid("/ip4/192.0.2.1/udp/4001/webrtc-direct/certhash/u!!", /decode/);
  invalid("/ip4/192.0.2.1/udp/4001/webrtc-direct/certhash/zzzz");
  invalid("/ip4/192.0.2.1/udp/4001/webrtc-direct/certhash/uEiA");
  invalid("/ip4/999.0.2.1/udp/4001/webrtc-direct");
  invalid("/ip4/192.0.2.1/udp/70000/webrtc-direct");
  invalid("ip4/192.0.2.1/udp/4001/webrtc-direct");
  invalid("/nonsense/1");
  invalid(42);
  invalid(null);
  invalid({});
});

Deno.test("multiaddr: every truncation of an address parses or fails typed", () => {
  const text = `${ADDRESS}/p2p/${PEER}`;
  const full = parseWebRTCDirectMultiaddr(text);
  for (let i = 0; i <= text.length; i++) {
    const cut = text.slice(0, i);
    try {
      const parsed = parseWebRTCDirectMultiaddr(cut);
      // Only cuts that still end on a whole component (the multiaddr
      // library ignores a trailing slash) can parse.
      assert.ok([ADDRESS, text].includes(cut.replace(/\/$/, "")), cut);
      assert.deepEqual(parsed.certhashes, full.certhashes);
    } catch (error) {
      assert.ok(
        error instanceof InvalidMultiaddrError ||
          error instanceof UnsupportedCerthashError,
        `${cut}: ${error}`,
      );
    }
  }
  const bytes = multiaddr(text).bytes;
  const whole = multiaddr(ADDRESS).bytes.length;
  for (let i = 0; i < bytes.length; i++) {
    const cut = () => parseWebRTCDirectMultiaddr(bytes.subarray(0, i));
    if (i === whole) {
      assert.deepEqual(cut().certhashes, full.certhashes);
      continue;
    }
    assert.throws(
      cut,
      (error: unknown) =>
        error instanceof InvalidMultiaddrError ||
        error instanceof UnsupportedCerthashError,
      `${i} bytes`,
    );
  }
});

Deno.test("multiaddr: random bytes and mutated addresses fail typed (seeded)", () => {
  const seed = 0x3a11;
  const next = random(seed);
  const bytes = multiaddr(`${ADDRESS}/p2p/${PEER}`).bytes;
  for (let i = 0; i < 2000; i++) {
    let input: Uint8Array;
    if (i % 2 === 0) {
      input = randomBytes(next, Math.floor(next() * 64));
    } else {
      input = bytes.slice();
      const flips = 1 + Math.floor(next() * 3);
      for (let j = 0; j < flips; j++) {
        input[Math.floor(next() * input.length)] = next() * 256;
      }
    }
    try {
      const parsed = parseWebRTCDirectMultiaddr(input);
      assert.ok(parsed.family === 4 || parsed.family === 6);
      assert.ok(parsed.port >= 1 && parsed.port <= 65535);
      assert.ok(parsed.certhashes.length > 0);
    } catch (error) {
      assert.ok(
        error instanceof InvalidMultiaddrError ||
          error instanceof UnsupportedCerthashError ||
          error instanceof UnresolvedMultiaddrError,
        `seed ${seed}, round ${i}: ${error}`,
      );
    }
  }
});

Deno.test("multiaddr: the advertised address round-trips", () => {
  const address = webRTCDirectMultiaddr({
    host: "192.0.2.1",
    port: 4001,
    fingerprint: SERVER,
    peerId: PEER,
  });
  assert.equal(address.toString(), `${ADDRESS}/p2p/${PEER}`);
  assert.deepEqual(parseWebRTCDirectMultiaddr(address), {
    host: "192.0.2.1",
    family: 4,
    port: 4001,
    certhashes: [SERVER],
    peerId: PEER,
  });
  const v6 = webRTCDirectMultiaddr({
    host: "2001:DB8::0:1",
    port: 1,
    fingerprint: SERVER,
  });
  assert.equal(
    v6.toString(),
    `/ip6/2001:db8::1/udp/1/webrtc-direct/certhash/${CERTHASH}`,
  );
  // A CID peer id is advertised in its canonical form.
  const cid = CID.createV1(0x72, Digest.decode(base58btc.baseDecode(PEER)));
  assert.ok(
    webRTCDirectMultiaddr({
      host: "192.0.2.1",
      port: 4001,
      fingerprint: SERVER,
      peerId: cid.toString(),
    }).toString().endsWith(`/p2p/${PEER}`),
  );
});

Deno.test("multiaddr: building refuses what cannot be advertised", () => {
  const build = (init: Record<string, unknown>) => () =>
    webRTCDirectMultiaddr({
      host: "192.0.2.1",
      port: 4001,
      fingerprint: SERVER,
      ...init,
    });
  const bad = (error: unknown) => error instanceof InvalidMultiaddrError;
  assert.throws(build({ host: "192.0.2.1/tcp/1" }), bad);
  assert.throws(build({ host: "example.com" }), bad);
  assert.throws(build({ host: "" }), bad);
  assert.throws(build({ host: "0.0.0.0" }), /unspecified/);
  assert.throws(build({ host: "::" }), /unspecified/);
  assert.throws(build({ host: "fe80::1%eth0" }), bad);
  assert.throws(build({ host: undefined }), bad);
  for (const port of [0, 65536, 1.5, NaN, "4001"]) {
    assert.throws(build({ port }), bad, String(port));
  }
  assert.throws(build({ peerId: "notapeer" }), bad);
  assert.throws(build({ peerId: `${PEER}/p2p-circuit` }), bad);
  assert.throws(build({ peerId: 42 }), bad);
  assert.throws(
    build({
      fingerprint: { algorithm: "sha-256", digest: new Uint8Array(16) },
    }),
    InvalidFingerprintError,
  );
});
