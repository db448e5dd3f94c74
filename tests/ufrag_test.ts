import assert from "node:assert/strict";
import {
  InvalidIceCredentialError,
  InvalidStunUsernameError,
} from "../core/errors.ts";
import {
  assertIcePwd,
  assertIceUfrag,
  generateUfrag,
  isIcePwd,
  isIceUfrag,
  parseStunUsername,
  serverUfragV2,
  UFRAG_PREFIX_V1,
  UFRAG_PREFIX_V2,
} from "../core/ufrag.ts";
import { random } from "./random.ts";

const ICE_CHARS =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const V1 = `${UFRAG_PREFIX_V1}abcdefghijklmnopqrstuvwxyz012345`;

Deno.test("ufrag: a generated v1 ufrag is the prefix and 32 alphanumerics", () => {
  const seen = new Set<string>();
  for (let i = 0; i < 1000; i++) {
    const ufrag = generateUfrag();
    assert.match(ufrag, /^libp2p\+webrtc\+v1\/[A-Za-z0-9]{32}$/);
    assert.ok(isIceUfrag(ufrag) && isIcePwd(ufrag));
    seen.add(ufrag);
  }
  assert.equal(seen.size, 1000);
});

Deno.test("ufrag: other lengths, within what keeps it a valid password", () => {
  assert.equal(generateUfrag(5).length, 22);
  assert.equal(generateUfrag(64).length, 17 + 64);
  assert.equal(generateUfrag(239).length, 256);
  for (const length of [4, 240, 0, -1, 1.5, NaN, Infinity]) {
    assert.throws(() => generateUfrag(length), RangeError, String(length));
  }
});

Deno.test("ufrag: generated characters are uniform (no modulo bias)", () => {
  // 62 characters; with `byte % 62` and no rejection the first 8 would come
  // up 5/256 instead of 4/256 of the time, 25% too often.
  const counts = new Map<string, number>();
  const rounds = 2000;
  for (let i = 0; i < rounds; i++) {
    for (const c of generateUfrag().slice(UFRAG_PREFIX_V1.length)) {
      counts.set(c, (counts.get(c) ?? 0) + 1);
    }
  }
  assert.equal(counts.size, 62);
  const expected = (rounds * 32) / 62; // about 1032
  const biased = [..."ABCDEFGH"].reduce((n, c) => n + counts.get(c)!, 0) / 8;
  const rest = [...counts.entries()]
    .filter(([c]) => !"ABCDEFGH".includes(c))
    .reduce((n, [, v]) => n + v, 0) / 54;
  // Bias would put `biased` near 1.25 × `rest`; fair draws keep them within a
  // few percent (the standard error of the mean of 8 counts is about 1.1%).
  assert.ok(Math.abs(biased / rest - 1) < 0.08, `${biased} vs ${rest}`);
  let chi2 = 0;
  for (const count of counts.values()) {
    chi2 += (count - expected) ** 2 / expected;
  }
  // 61 degrees of freedom: p < 1e-6 beyond about 130.
  assert.ok(chi2 < 130, `chi² ${chi2}`);
});

Deno.test("ufrag: ICE ufrag is 4 to 256 ice-chars, password 22 to 256", () => {
  assert.ok(isIceUfrag("abcd"));
  assert.ok(isIceUfrag("a".repeat(256)));
  assert.ok(isIceUfrag(ICE_CHARS));
  assert.ok(!isIceUfrag("abc"));
  assert.ok(!isIceUfrag("a".repeat(257)));
  assert.ok(!isIceUfrag(""));
  assert.ok(isIcePwd("a".repeat(22)));
  assert.ok(isIcePwd("a".repeat(256)));
  assert.ok(!isIcePwd("a".repeat(21)));
  assert.ok(!isIcePwd("a".repeat(257)));
  for (const value of [undefined, null, 1234, ["abcd"], { length: 4 }]) {
    assert.ok(!isIceUfrag(value) && !isIcePwd(value));
  }
});

Deno.test("ufrag: every character outside [A-Za-z0-9+/] is refused, anywhere", () => {
  const outside: string[] = [];
  for (let code = 0; code < 0x80; code++) {
    const c = String.fromCharCode(code);
    if (!ICE_CHARS.includes(c)) outside.push(c);
  }
  outside.push("é", "\u2028", "\u00a0", "🚀", "\uFEFF", "\ud800");
  const base = "a".repeat(30);
  for (const c of outside) {
    for (const at of [0, 15, 30]) {
      const value = base.slice(0, at) + c + base.slice(at);
      assert.ok(!isIceUfrag(value), JSON.stringify(value));
      assert.ok(!isIcePwd(value), JSON.stringify(value));
    }
  }
});

Deno.test("ufrag: CR/LF injection never passes", () => {
  for (
    const value of [
      `${V1}\r\na=ice-lite`,
      `${V1}\n`,
      `${V1}\r`,
      `\n${V1}`,
      `${V1}\r\n`,
    ]
  ) {
    assert.throws(
      () => assertIceUfrag(value),
      (error: unknown) =>
        error instanceof InvalidIceCredentialError &&
        error.code === "ERR_INVALID_ICE_CREDENTIAL" &&
        error.credential === "ufrag" && !error.message.includes("\n"),
    );
    assert.throws(
      () => assertIcePwd(value),
      (error: unknown) =>
        error instanceof InvalidIceCredentialError &&
        error.credential === "pwd" && !error.message.includes("\r"),
    );
  }
});

Deno.test("ufrag: error messages quote and cut what they were given", () => {
  const long = "x".repeat(10_000) + "\n";
  assert.throws(
    () => assertIceUfrag(long),
    (error: unknown) =>
      error instanceof InvalidIceCredentialError &&
      error.message.length < 200,
  );
});

Deno.test("ufrag: a v1 USERNAME is the same ufrag twice", () => {
  assert.deepEqual(parseStunUsername(`${V1}:${V1}`), {
    version: 1,
    serverUfrag: V1,
    clientUfrag: V1,
    clientPwd: V1,
  });
  // A different client half is returned as seen: it is what the checks carry.
  assert.deepEqual(parseStunUsername(`${V1}:abcd`), {
    version: 1,
    serverUfrag: V1,
    clientUfrag: "abcd",
    clientPwd: V1,
  });
});

Deno.test("ufrag: a v2 USERNAME carries the client's password in the server ufrag", () => {
  const pwd = "ABCDEFGHIJKLMNOPQRSTUV+/"; // 24 characters, as browsers make
  const server = serverUfragV2(pwd);
  assert.equal(server, `${UFRAG_PREFIX_V2}${pwd}`);
  assert.deepEqual(parseStunUsername(`${server}:hGx2`), {
    version: 2,
    serverUfrag: server,
    clientUfrag: "hGx2",
    clientPwd: pwd,
  });
});

Deno.test("ufrag: the v2 server ufrag fits in 256 characters or is refused", () => {
  const longest = "p".repeat(256 - UFRAG_PREFIX_V2.length);
  assert.equal(serverUfragV2(longest).length, 256);
  assert.throws(
    () => serverUfragV2(longest + "p"),
    (error: unknown) =>
      error instanceof InvalidIceCredentialError && error.credential === "pwd",
  );
  for (const bad of ["p".repeat(21), `${"p".repeat(22)}\r\n`, "", "p p"]) {
    assert.throws(() => serverUfragV2(bad), InvalidIceCredentialError);
  }
  // The longest v2 ufrag is a valid USERNAME half and parses back.
  assert.equal(
    parseStunUsername(`${serverUfragV2(longest)}:abcd`).clientPwd,
    longest,
  );
});

function rejects(
  username: unknown,
  reason: InvalidStunUsernameError["reason"],
): void {
  assert.throws(
    () => parseStunUsername(username as string),
    (error: unknown) =>
      error instanceof InvalidStunUsernameError &&
      error.code === "ERR_INVALID_STUN_USERNAME" && error.reason === reason,
    `${JSON.stringify(username)?.slice(0, 60)} should fail with ${reason}`,
  );
}

Deno.test("ufrag: hostile USERNAMEs are refused with a reason", () => {
  rejects(undefined, "format");
  rejects(42, "format");
  rejects(new TextEncoder().encode(`${V1}:${V1}`), "format");
  rejects("", "format");
  rejects(V1, "format"); // no colon
  rejects(`${V1}:${"a".repeat(600)}`, "format"); // over 513 characters
  rejects(`:${V1}`, "server-ufrag");
  rejects(`abc:${V1}`, "server-ufrag");
  rejects(`${V1}\r\n:${V1}`, "server-ufrag");
  rejects(`${"a".repeat(257)}:abcd`, "server-ufrag");
  rejects(`${V1}:`, "client-ufrag");
  rejects(`${V1}:abc`, "client-ufrag");
  rejects(`${V1}:${V1}:${V1}`, "client-ufrag"); // a second colon
  rejects(`${V1}:${V1}\r\na=evil`, "client-ufrag");
  rejects(`${V1}:${V1}\n`, "client-ufrag");
  rejects(`${V1}:abcd\u0000`, "client-ufrag");
  rejects(`${V1}:${"a".repeat(257)}`, "client-ufrag");
  rejects("abcd:abcd", "version");
  rejects(`libp2p+webrtc+v3/${"a".repeat(32)}:abcd`, "version");
  rejects(`libp2p+webrtc+v0/${"a".repeat(32)}:abcd`, "version");
  rejects(`LIBP2P+WEBRTC+V1/${"a".repeat(32)}:abcd`, "version");
  rejects(`libp2p+webrtc+v1${"a".repeat(32)}:abcd`, "version"); // no slash
  rejects(`xlibp2p+webrtc+v1/${"a".repeat(32)}:abcd`, "version");
  // v1 ufrag shorter than a password; v2 with a password too short or empty.
  rejects(`${UFRAG_PREFIX_V1}abcd:abcd`, "client-pwd");
  rejects(`${UFRAG_PREFIX_V1}:abcd`, "client-pwd");
  rejects(`${UFRAG_PREFIX_V2}${"p".repeat(21)}:abcd`, "client-pwd");
  rejects(`${UFRAG_PREFIX_V2}:abcd`, "client-pwd");
});

Deno.test("ufrag: random USERNAMEs parse consistently or fail typed (seeded)", () => {
  const seed = 0x57a9;
  const next = random(seed);
  const pick = <T>(items: readonly T[]): T =>
    items[Math.floor(next() * items.length)];
  const prefixes = [UFRAG_PREFIX_V1, UFRAG_PREFIX_V2, "libp2p+webrtc+v", ""];
  const hostile = [":", "\r\n", "\n", "\0", "é", "🚀", " ", "="];
  // A half: maybe a prefix, then ice-chars, now and then a hostile character.
  const half = () => {
    let text = next() < 0.7 ? pick(prefixes) : "";
    const length = Math.floor(next() * 40);
    for (let j = 0; j < length; j++) {
      text += next() < 0.01 ? pick(hostile) : pick([...ICE_CHARS]);
    }
    return text;
  };
  const parsed = { 1: 0, 2: 0 };
  for (let i = 0; i < 5000; i++) {
    const username = half() + pick([":", ":", ":", "", "::"]) + half();
    try {
      const result = parseStunUsername(username);
      parsed[result.version]++;
      assert.equal(`${result.serverUfrag}:${result.clientUfrag}`, username);
      assert.ok(isIceUfrag(result.serverUfrag) && isIcePwd(result.serverUfrag));
      assert.ok(isIceUfrag(result.clientUfrag) && isIcePwd(result.clientPwd));
      const prefix = result.version === 1 ? UFRAG_PREFIX_V1 : UFRAG_PREFIX_V2;
      assert.ok(result.serverUfrag.startsWith(prefix));
      assert.equal(
        result.version === 1 ? result.serverUfrag : prefix + result.clientPwd,
        result.serverUfrag,
      );
    } catch (error) {
      assert.ok(
        error instanceof InvalidStunUsernameError,
        `seed ${seed}, round ${i}, ${JSON.stringify(username)}: ${error}`,
      );
    }
  }
  // Enough of both versions got through for the checks above to mean much.
  assert.ok(
    parsed[1] > 100 && parsed[2] > 100,
    `seed ${seed}: ${JSON.stringify(parsed)}`,
  );
});
