import assert from "node:assert/strict";
import type { CertificateFingerprint } from "../core/backend.ts";
import { fingerprintToHex } from "../core/certhash.ts";
import {
  InvalidFingerprintError,
  InvalidIceCredentialError,
  InvalidSdpError,
} from "../core/errors.ts";
import {
  buildClientOffer,
  buildServerAnswer,
  candidateAddress,
  filterCandidates,
  findAttribute,
  findIceCredentials,
  readFingerprint,
  readIcePwd,
  readIceUfrag,
  replaceIceCredentials,
} from "../core/sdp.ts";
import { parseStunUsername, serverUfragV2 } from "../core/ufrag.ts";
import { random, randomBytes } from "./random.ts";

const FINGERPRINT: CertificateFingerprint = {
  algorithm: "sha-256",
  digest: Uint8Array.from({ length: 32 }, (_, i) => i * 7),
};
const HEX = fingerprintToHex(FINGERPRINT);
const UFRAG = "libp2p+webrtc+v1/abcdefghijklmnopqrstuvwxyz012345";

// A Chrome offer for one negotiated data channel, as the dialer munges it.
const CHROME_OFFER = [
  "v=0",
  "o=- 4215775240449105457 2 IN IP4 127.0.0.1",
  "s=-",
  "t=0 0",
  "a=group:BUNDLE 0",
  "a=extmap-allow-mixed",
  "a=msid-semantic: WMS",
  "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
  "c=IN IP4 0.0.0.0",
  "a=ice-ufrag:R8dn",
  "a=ice-pwd:Ow6ODfXpiXV1o+kuLUc3LqQi",
  "a=ice-options:trickle",
  `a=fingerprint:sha-256 ${HEX}`,
  "a=setup:actpass",
  "a=mid:0",
  "a=sctp-port:5000",
  "a=max-message-size:262144",
  "",
].join("\r\n");

Deno.test("sdp: the server answer, IPv4, line by line", () => {
  const sdp = buildServerAnswer({
    host: "192.0.2.1",
    port: 4001,
    fingerprint: FINGERPRINT,
    ufrag: UFRAG,
  });
  assert.equal(
    sdp,
    [
      "v=0",
      "o=- 0 0 IN IP4 192.0.2.1",
      "s=-",
      "t=0 0",
      "a=ice-lite",
      "m=application 4001 UDP/DTLS/SCTP webrtc-datachannel",
      "c=IN IP4 192.0.2.1",
      "a=mid:0",
      "a=ice-options:ice2",
      `a=ice-ufrag:${UFRAG}`,
      `a=ice-pwd:${UFRAG}`,
      `a=fingerprint:sha-256 ${HEX}`,
      "a=setup:passive",
      "a=sctp-port:5000",
      "a=max-message-size:16384",
      "a=candidate:1 1 UDP 1 192.0.2.1 4001 typ host",
      "a=end-of-candidates",
      "",
    ].join("\r\n"),
  );
});

Deno.test("sdp: the server answer, IPv6, with the offer's mid", () => {
  const sdp = buildServerAnswer({
    host: "2001:db8::1",
    port: 65535,
    fingerprint: FINGERPRINT,
    ufrag: UFRAG,
    mid: "data",
  });
  assert.ok(sdp.includes("\r\no=- 0 0 IN IP6 2001:db8::1\r\n"));
  assert.ok(sdp.includes("\r\nc=IN IP6 2001:db8::1\r\n"));
  assert.ok(sdp.includes("\r\na=mid:data\r\n"));
  assert.ok(
    sdp.includes("\r\na=candidate:1 1 UDP 1 2001:db8::1 65535 typ host\r\n"),
  );
});

Deno.test("sdp: a v2 answer uses libp2p+webrtc+v2/<client pwd> for both", () => {
  const pwd = readIcePwd(CHROME_OFFER);
  const ufrag = serverUfragV2(pwd);
  const sdp = buildServerAnswer({
    host: "192.0.2.1",
    port: 4001,
    fingerprint: FINGERPRINT,
    ufrag,
  });
  assert.equal(readIceUfrag(sdp), `libp2p+webrtc+v2/${pwd}`);
  assert.equal(readIcePwd(sdp), `libp2p+webrtc+v2/${pwd}`);
});

Deno.test("sdp: the answer reads back: fingerprint, ufrag, pwd", () => {
  const sdp = buildServerAnswer({
    host: "10.0.0.1",
    port: 1,
    fingerprint: FINGERPRINT,
    ufrag: UFRAG,
  });
  assert.deepEqual(readFingerprint(sdp), FINGERPRINT);
  assert.equal(readIceUfrag(sdp), UFRAG);
  assert.equal(readIcePwd(sdp), UFRAG);
});

Deno.test("sdp: only CRLF line endings and printable ASCII in what is built", () => {
  const next = random(0x5d9);
  for (let i = 0; i < 300; i++) {
    const v6 = next() < 0.5;
    const host = v6
      ? Array.from(
        { length: 8 },
        () => Math.floor(next() * 0x10000).toString(16),
      ).join(":")
      : Array.from({ length: 4 }, () => Math.floor(next() * 256)).join(".");
    const port = 1 + Math.floor(next() * 65535);
    const fingerprint: CertificateFingerprint = {
      algorithm: "sha-256",
      digest: randomBytes(next, 32),
    };
    const chars =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const ufrag = "libp2p+webrtc+v1/" +
      Array.from(
        { length: 5 + Math.floor(next() * 200) },
        () => chars[Math.floor(next() * chars.length)],
      ).join("");
    for (
      const sdp of [
        buildServerAnswer({ host, port, fingerprint, ufrag }),
        buildClientOffer({ host, port, ufrag, pwd: ufrag, fingerprint }),
      ]
    ) {
      assert.ok(sdp.endsWith("\r\n"));
      const lines = sdp.slice(0, -2).split("\r\n");
      for (const line of lines) {
        assert.match(line, /^[a-z]=[\x20-\x7e]+$/, `round ${i}: ${line}`);
      }
      assert.deepEqual(readFingerprint(sdp), fingerprint);
      assert.equal(readIceUfrag(sdp), ufrag);
      assert.equal(readIcePwd(sdp), ufrag);
    }
  }
});

Deno.test("sdp: the client offer a v1 listener infers, line by line", () => {
  const username = parseStunUsername(`${UFRAG}:${UFRAG}`);
  const sdp = buildClientOffer({
    host: "198.51.100.7",
    port: 50123,
    ufrag: username.clientUfrag,
    pwd: username.clientPwd,
    fingerprint: FINGERPRINT,
  });
  assert.equal(
    sdp,
    [
      "v=0",
      "o=- 0 0 IN IP4 198.51.100.7",
      "s=-",
      "c=IN IP4 198.51.100.7",
      "t=0 0",
      "m=application 50123 UDP/DTLS/SCTP webrtc-datachannel",
      "a=mid:0",
      "a=ice-options:ice2",
      `a=ice-ufrag:${UFRAG}`,
      `a=ice-pwd:${UFRAG}`,
      `a=fingerprint:sha-256 ${HEX}`,
      "a=setup:active",
      "a=sctp-port:5000",
      "a=max-message-size:16384",
      "",
    ].join("\r\n"),
  );
});

Deno.test("sdp: the client offer a v2 listener infers has the client's own ufrag and pwd", () => {
  const pwd = "Ow6ODfXpiXV1o+kuLUc3LqQi";
  const username = parseStunUsername(`${serverUfragV2(pwd)}:R8dn`);
  const sdp = buildClientOffer({
    host: "::1",
    port: 9,
    ufrag: username.clientUfrag,
    pwd: username.clientPwd,
    setup: "actpass",
  });
  assert.equal(readIceUfrag(sdp), "R8dn");
  assert.equal(readIcePwd(sdp), pwd);
  assert.ok(sdp.includes("\r\na=setup:actpass\r\n"));
  assert.ok(sdp.includes("\r\nc=IN IP6 ::1\r\n"));
  // The placeholder fingerprint is a well-formed sha-256 one.
  assert.equal(readFingerprint(sdp).digest.length, 32);
});

Deno.test("sdp: addresses must be IP literals: hosts that would inject or mislead", () => {
  const good = [
    "0.0.0.0",
    "255.255.255.255",
    "::",
    "::1",
    "1::",
    "fe80::1",
    "2001:DB8:0:0:0:0:0:1",
    "::ffff:192.0.2.1",
    "64:ff9b::192.0.2.1",
    "1:2:3:4:5:6:192.0.2.1",
  ];
  for (const host of good) {
    buildServerAnswer({
      host,
      port: 1,
      fingerprint: FINGERPRINT,
      ufrag: UFRAG,
    });
  }
  const bad: unknown[] = [
    "",
    "localhost",
    "example.com",
    "192.0.2.1\r\na=candidate:1 1 UDP 1 6.6.6.6 1 typ host",
    "192.0.2.1\n",
    " 192.0.2.1",
    "192.0.2.1 4001",
    "256.0.0.1",
    "01.2.3.4",
    "1.2.3",
    "1.2.3.4.5",
    "1.2.3.-4",
    ":::",
    "1:::2",
    "1::2::3",
    ":1::",
    "1::2:",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7::8",
    "12345::",
    "g::1",
    "fe80::1%eth0",
    "192.0.2.1::",
    "::192.0.2.1:1",
    "[::1]",
    "1:2:3:4:5:6:7:192.0.2.1",
    "::ffff:256.0.0.1",
    undefined,
    1234,
  ];
  for (const host of bad) {
    for (
      const build of [
        () =>
          buildServerAnswer({
            host: host as string,
            port: 1,
            fingerprint: FINGERPRINT,
            ufrag: UFRAG,
          }),
        () =>
          buildClientOffer({
            host: host as string,
            port: 1,
            ufrag: UFRAG,
            pwd: UFRAG,
          }),
      ]
    ) {
      assert.throws(
        build,
        (error: unknown) =>
          error instanceof InvalidSdpError && error.code === "ERR_INVALID_SDP",
        JSON.stringify(host),
      );
    }
  }
});

Deno.test("sdp: ports are integers from 1 to 65535", () => {
  for (const port of [0, -1, 65536, 1.5, NaN, Infinity, "4001", null]) {
    assert.throws(
      () =>
        buildServerAnswer({
          host: "192.0.2.1",
          port: port as number,
          fingerprint: FINGERPRINT,
          ufrag: UFRAG,
        }),
      InvalidSdpError,
      String(port),
    );
    assert.throws(
      () =>
        buildClientOffer({
          host: "192.0.2.1",
          port: port as number,
          ufrag: UFRAG,
          pwd: UFRAG,
        }),
      InvalidSdpError,
      String(port),
    );
  }
});

Deno.test("sdp: ufrags, passwords, mids and setup are checked before writing", () => {
  const answer = (init: Record<string, unknown>) => () =>
    buildServerAnswer({
      host: "192.0.2.1",
      port: 1,
      fingerprint: FINGERPRINT,
      ufrag: UFRAG,
      ...init,
    });
  const offer = (init: Record<string, unknown>) => () =>
    buildClientOffer({
      host: "192.0.2.1",
      port: 1,
      ufrag: UFRAG,
      pwd: UFRAG,
      ...init,
    });
  const credential = (error: unknown) =>
    error instanceof InvalidIceCredentialError;
  assert.throws(answer({ ufrag: `${UFRAG}\r\na=ice-lite` }), credential);
  assert.throws(answer({ ufrag: "abcd" }), credential); // not a valid pwd
  assert.throws(answer({ ufrag: "a".repeat(257) }), credential);
  assert.throws(answer({ ufrag: undefined }), credential);
  assert.throws(offer({ ufrag: "abc" }), credential);
  assert.throws(offer({ ufrag: `${UFRAG}\n` }), credential);
  assert.throws(offer({ pwd: "abcd" }), credential);
  assert.throws(offer({ pwd: `${UFRAG}\r\n` }), credential);
  for (const mid of ["", "0\r\na=x", "a b", "x".repeat(33)]) {
    assert.throws(answer({ mid }), InvalidSdpError);
    assert.throws(offer({ mid }), InvalidSdpError);
  }
  assert.throws(offer({ setup: "passive" }), InvalidSdpError);
  assert.throws(offer({ setup: "active\r\na=x" }), InvalidSdpError);
  const badFingerprint = { algorithm: "sha-256", digest: new Uint8Array(20) };
  assert.throws(
    answer({ fingerprint: badFingerprint }),
    InvalidFingerprintError,
  );
  assert.throws(
    offer({ fingerprint: badFingerprint }),
    InvalidFingerprintError,
  );
  assert.throws(
    answer({ fingerprint: { algorithm: "sha-1", digest: new Uint8Array(32) } }),
    InvalidFingerprintError,
  );
});

Deno.test("sdp: readFingerprint takes the first sha-256 line, LF or CRLF", () => {
  assert.deepEqual(readFingerprint(CHROME_OFFER), FINGERPRINT);
  assert.deepEqual(
    readFingerprint(CHROME_OFFER.replaceAll("\r\n", "\n")),
    FINGERPRINT,
  );
  const lower = CHROME_OFFER.replace(HEX, HEX.toLowerCase());
  assert.deepEqual(readFingerprint(lower), FINGERPRINT);
  const other = "AA:".repeat(19) + "AA";
  const several = CHROME_OFFER.replace(
    "a=fingerprint:",
    `a=fingerprint:sha-1 ${other}\r\na=fingerprint:`,
  );
  assert.deepEqual(readFingerprint(several), FINGERPRINT);
  const upper = CHROME_OFFER.replace("sha-256", "SHA-256");
  assert.deepEqual(readFingerprint(upper), FINGERPRINT);
  const trailing = CHROME_OFFER.replace(HEX, `${HEX} `);
  assert.deepEqual(readFingerprint(trailing), FINGERPRINT);
});

Deno.test("sdp: readFingerprint fails typed: none, only other hashes, malformed", () => {
  const none = CHROME_OFFER.replace(/a=fingerprint:[^\r]*\r\n/, "");
  assert.throws(() => readFingerprint(none), InvalidSdpError);
  const sha1 = CHROME_OFFER.replace("sha-256", "sha-1");
  assert.throws(() => readFingerprint(sha1), InvalidFingerprintError);
  const short = CHROME_OFFER.replace(HEX, HEX.slice(3));
  assert.throws(() => readFingerprint(short), InvalidFingerprintError);
  const garbage = CHROME_OFFER.replace(HEX, "zz");
  assert.throws(() => readFingerprint(garbage), InvalidFingerprintError);
  assert.throws(() => readFingerprint(undefined as never), InvalidSdpError);
  assert.throws(() => readFingerprint(""), InvalidSdpError);
});

Deno.test("sdp: ufrag and pwd read back from a real offer and fail typed", () => {
  assert.equal(readIceUfrag(CHROME_OFFER), "R8dn");
  assert.equal(readIcePwd(CHROME_OFFER), "Ow6ODfXpiXV1o+kuLUc3LqQi");
  const noPwd = CHROME_OFFER.replace(/a=ice-pwd:[^\r]*\r\n/, "");
  assert.throws(() => readIcePwd(noPwd), InvalidSdpError);
  const noUfrag = CHROME_OFFER.replace(/a=ice-ufrag:[^\r]*\r\n/, "");
  assert.throws(() => readIceUfrag(noUfrag), InvalidSdpError);
  // A v2 dialer aborts when its stack's password breaks the grammar.
  const shortPwd = CHROME_OFFER.replace("Ow6ODfXpiXV1o+kuLUc3LqQi", "short");
  assert.throws(
    () => readIcePwd(shortPwd),
    (error: unknown) =>
      error instanceof InvalidIceCredentialError && error.credential === "pwd",
  );
  const oddUfrag = CHROME_OFFER.replace("R8dn", "R8 dn");
  assert.throws(() => readIceUfrag(oddUfrag), InvalidIceCredentialError);
  assert.throws(() => readIceUfrag(42 as never), InvalidSdpError);
});

Deno.test("sdp: munging replaces every ufrag and pwd line and nothing else", () => {
  const twoSections = CHROME_OFFER +
    [
      "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
      "a=ice-ufrag:Zz9y",
      "a=ice-pwd:AAAAAAAAAAAAAAAAAAAAAAAA",
      "",
    ].join("\r\n");
  const munged = replaceIceCredentials(twoSections, {
    ufrag: UFRAG,
    pwd: UFRAG,
  });
  const before = twoSections.split("\r\n");
  const after = munged.split("\r\n");
  assert.equal(after.length, before.length);
  for (let i = 0; i < before.length; i++) {
    if (before[i].startsWith("a=ice-ufrag:")) {
      assert.equal(after[i], `a=ice-ufrag:${UFRAG}`);
    } else if (before[i].startsWith("a=ice-pwd:")) {
      assert.equal(after[i], `a=ice-pwd:${UFRAG}`);
    } else {
      assert.equal(after[i], before[i]);
    }
  }
  // LF-only input keeps LF-only output.
  const lf = replaceIceCredentials(CHROME_OFFER.replaceAll("\r\n", "\n"), {
    ufrag: UFRAG,
    pwd: UFRAG,
  });
  assert.ok(!lf.includes("\r"));
  assert.equal(readIceUfrag(lf), UFRAG);
});

Deno.test("sdp: munging refuses bad credentials and SDP without the lines", () => {
  const bad = [
    { ufrag: `${UFRAG}\r\na=ice-lite`, pwd: UFRAG },
    { ufrag: UFRAG, pwd: `${UFRAG}\r\na=ice-lite` },
    { ufrag: "abc", pwd: UFRAG },
    { ufrag: UFRAG, pwd: "abcd" },
  ];
  for (const credentials of bad) {
    assert.throws(
      () => replaceIceCredentials(CHROME_OFFER, credentials),
      InvalidIceCredentialError,
    );
  }
  assert.throws(
    () => replaceIceCredentials(CHROME_OFFER, undefined as never),
    InvalidIceCredentialError,
  );
  const noPwd = CHROME_OFFER.replace(/a=ice-pwd:[^\r]*\r\n/, "");
  assert.throws(
    () => replaceIceCredentials(noPwd, { ufrag: UFRAG, pwd: UFRAG }),
    InvalidSdpError,
  );
  const noUfrag = CHROME_OFFER.replace(/a=ice-ufrag:[^\r]*\r\n/, "");
  assert.throws(
    () => replaceIceCredentials(noUfrag, { ufrag: UFRAG, pwd: UFRAG }),
    InvalidSdpError,
  );
  assert.throws(
    () => replaceIceCredentials(null as never, { ufrag: UFRAG, pwd: UFRAG }),
    InvalidSdpError,
  );
});

Deno.test("sdp: findAttribute and findIceCredentials read the first line as written, never throw on a string", () => {
  assert.equal(findAttribute(CHROME_OFFER, "mid"), "0");
  assert.equal(findAttribute(CHROME_OFFER, "setup"), "actpass");
  assert.equal(findAttribute(CHROME_OFFER, "ice-lite"), undefined);
  assert.equal(
    findAttribute(CHROME_OFFER.replaceAll("\r\n", "\n"), "mid"),
    "0",
  );
  assert.deepEqual(findIceCredentials(CHROME_OFFER), {
    ufrag: "R8dn",
    pwd: "Ow6ODfXpiXV1o+kuLUc3LqQi",
  });
  // Two sections: the first of each wins.
  const twoSections = CHROME_OFFER +
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n" +
    "a=ice-ufrag:Zz9y\r\na=ice-pwd:AAAAAAAAAAAAAAAAAAAAAAAA\r\n";
  assert.equal(findIceCredentials(twoSections)?.ufrag, "R8dn");
  // Values are not checked: a backend compares and checks them itself.
  const odd = CHROME_OFFER.replace("R8dn", "a b");
  assert.deepEqual(findIceCredentials(odd)?.ufrag, "a b");
  for (const line of [/a=ice-pwd:[^\r]*\r\n/, /a=ice-ufrag:[^\r]*\r\n/]) {
    assert.equal(findIceCredentials(CHROME_OFFER.replace(line, "")), undefined);
  }
  assert.equal(findIceCredentials(""), undefined);
  assert.throws(
    () => findAttribute(undefined as never, "mid"),
    InvalidSdpError,
  );
  assert.throws(() => findIceCredentials(42 as never), InvalidSdpError);
});

Deno.test("sdp: munging what findIceCredentials read round-trips", () => {
  const own = findIceCredentials(CHROME_OFFER)!;
  const munged = replaceIceCredentials(CHROME_OFFER, {
    ufrag: UFRAG,
    pwd: UFRAG,
  });
  assert.deepEqual(findIceCredentials(munged), { ufrag: UFRAG, pwd: UFRAG });
  assert.equal(replaceIceCredentials(munged, own), CHROME_OFFER);
});

const CANDIDATES = [
  "a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host",
  "a=candidate:2 1 udp 2122262783 ::1 50001 typ host",
  "a=candidate:3 1 udp 2122194687 3f1b5a8e-1d2c-4b7a-9c1e-2f4d6a8b0c1e.local 50002 typ host",
  "a=candidate:4 1 UDP 1694498815 192.0.2.1 50003 typ srflx raddr 0.0.0.0 rport 0",
];

Deno.test("sdp: candidateAddress reads the fifth field, with or without a=", () => {
  assert.equal(candidateAddress(CANDIDATES[0]), "127.0.0.1");
  assert.equal(candidateAddress(CANDIDATES[1].slice(2)), "::1");
  assert.ok(candidateAddress(CANDIDATES[2])?.endsWith(".local"));
  assert.equal(candidateAddress(CANDIDATES[3]), "192.0.2.1");
  assert.equal(candidateAddress("candidate:1 1 udp 1\t10.0.0.1 9"), "10.0.0.1");
  assert.equal(candidateAddress(""), undefined);
  assert.equal(candidateAddress("candidate:1 1 udp 1"), undefined);
});

Deno.test("sdp: filterCandidates keeps what it is told and every other line as written", () => {
  for (const eol of ["\r\n", "\n"]) {
    const sdp = [
      ...CHROME_OFFER.split("\r\n").slice(0, -1),
      ...CANDIDATES,
      "a=end-of-candidates",
      "",
    ].join(eol);
    const seen: string[] = [];
    const all = filterCandidates(sdp, (candidate) => {
      seen.push(candidate);
      return true;
    });
    assert.equal(all, sdp);
    // Each value without a= and without its line ending.
    assert.deepEqual(seen, CANDIDATES.map((line) => line.slice(2)));
    const loopback = filterCandidates(
      sdp,
      (candidate) => candidateAddress(candidate) === "127.0.0.1",
    );
    assert.equal(
      loopback,
      sdp.split(eol).filter((line) =>
        !line.startsWith("a=candidate:") || line === CANDIDATES[0]
      ).join(eol),
    );
    assert.equal(
      filterCandidates(sdp, () => false),
      [...CHROME_OFFER.split("\r\n").slice(0, -1), "a=end-of-candidates", ""]
        .join(eol),
    );
  }
  // A last line without a line ending is filtered too.
  assert.equal(
    filterCandidates("v=0\r\n" + CANDIDATES[0], () => false),
    "v=0\r\n",
  );
  assert.throws(
    () => filterCandidates(null as never, () => true),
    InvalidSdpError,
  );
});
