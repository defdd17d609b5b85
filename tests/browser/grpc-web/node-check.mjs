// The generated gRPC-Web client from Node, for what a browser test cannot reach quickly: every
// error code a caller must see, the internal methods refused, the text framing, a deadline, and a
// live feed while another client rates. Run by tests/tests/grpc_web.rs against a suite it started:
//   GATEWAY_URL=http://127.0.0.1:8080 FAULTS_URL=http://127.0.0.1:9091/faults node node-check.mjs
// Prints one line per check; exits 1 on the first that fails.
import assert from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { connect, options, outcome, watch } from "./client.js";
import { GetBookRequestSchema, GetBookResponseSchema } from "../gen/bookstore/marketplace/v1/marketplace_pb.js";

const gateway = process.env.GATEWAY_URL;
const faults = process.env.FAULTS_URL;
assert.ok(gateway && faults, "GATEWAY_URL and FAULTS_URL must be set");
const api = connect(gateway);
const unique = `${Date.now()}${Math.floor(Math.random() * 1e6)}`;

async function check(name, body) {
  const started = Date.now();
  await body();
  console.log(`ok ${name} (${Date.now() - started} ms)`);
}

function expectCode(result, code) {
  assert.equal(result.code, code, `expected ${code}, got ${JSON.stringify(result)}`);
  assert.ok(result.message, "a status carries a message naming the problem");
}

await check("GetBook answers a book", async () => {
  const r = await outcome(() => api.marketplace.getBook({ id: 1n }));
  assert.equal(r.ok.book.id, "1");
  assert.ok(r.ok.book.title.length > 0);
});

await check("an unknown book is NOT_FOUND", async () => {
  expectCode(await outcome(() => api.marketplace.getBook({ id: 999_999_999n })), "NOT_FOUND");
});

await check("an empty search is INVALID_ARGUMENT", async () => {
  expectCode(await outcome(() => api.marketplace.searchBooks({ query: "  " })), "INVALID_ARGUMENT");
});

await check("a search finds books", async () => {
  const r = await outcome(() => api.marketplace.searchBooks({ query: "harry potter", pageSize: 3 }));
  assert.ok(r.ok.books.length > 0, JSON.stringify(r));
});

const email = `grpc-web-${unique}@example.com`;
const password = "correct horse battery";
let token;
await check("an account is made and signed in to", async () => {
  const made = await outcome(() => api.users.createUser({ email, displayName: "Web Reader", password }));
  assert.ok(made.ok, JSON.stringify(made));
  const signed = await outcome(() => api.users.signIn({ email, password }));
  token = signed.ok.accessToken;
  assert.ok(token, JSON.stringify(signed));
});

await check("a wrong password is UNAUTHENTICATED", async () => {
  expectCode(await outcome(() => api.users.signIn({ email, password: "not the password" })), "UNAUTHENTICATED");
});

await check("rating without a token is UNAUTHENTICATED, with one it is stored", async () => {
  expectCode(await outcome(() => api.recommendations.rateBook({ bookId: 2n, stars: 4 })), "UNAUTHENTICATED");
  const rated = await outcome(() => api.recommendations.rateBook({ bookId: 2n, stars: 4 }, options({ token })));
  assert.equal(rated.ok.rating.stars, 4, JSON.stringify(rated));
  const mine = await outcome(() => api.recommendations.listMyRatings({}, options({ token })));
  assert.deepEqual(mine.ok.ratings.map((r) => [r.bookId, r.stars]), [["2", 4]]);
});

await check("six stars are INVALID_ARGUMENT and nothing is stored", async () => {
  expectCode(
    await outcome(() => api.recommendations.rateBook({ bookId: 3n, stars: 6 }, options({ token }))),
    "INVALID_ARGUMENT",
  );
  const mine = await outcome(() => api.recommendations.listMyRatings({}, options({ token })));
  assert.equal(mine.ok.ratings.length, 1);
});

await check("methods for services only are refused from outside", async () => {
  const asUser = options({ token });
  for (const call of [
    () => api.recommendations.deleteUserRatings({ userId: "someone" }, asUser),
    () => api.recommendations.revokeSession({ sessionId: "s", expireTimeUnixMs: 1n }, asUser),
  ]) {
    expectCode(await outcome(call), "UNIMPLEMENTED");
  }
  const mine = await outcome(() => api.recommendations.listMyRatings({}, asUser));
  assert.equal(mine.ok.ratings.length, 1, "the refused call deleted nothing");
  for (const path of ["/grpc.health.v1.Health/Check", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"]) {
    const res = await fetch(gateway + path, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
      body: new Uint8Array([0, 0, 0, 0, 0]),
    });
    assert.equal(res.headers.get("grpc-status") ?? (await trailerStatus(res)), "12", path);
  }
});

await check("the caller's deadline is kept: DEADLINE_EXCEEDED", async () => {
  await setFaults([{ method: "GetBook", latency_ms: 400 }]);
  try {
    const started = Date.now();
    expectCode(await outcome(() => api.marketplace.getBook({ id: 1n }, options({ timeoutMs: 150 }))), "DEADLINE_EXCEEDED");
    assert.ok(Date.now() - started < 380, "the call ended at its deadline, not the service's delay");
  } finally {
    await setFaults([]);
  }
});

await check("application/grpc-web-text (base64) answers too", async () => {
  const message = toBinary(GetBookRequestSchema, create(GetBookRequestSchema, { id: 1n }));
  const frame = new Uint8Array(5 + message.length);
  new DataView(frame.buffer).setUint32(1, message.length);
  frame.set(message, 5);
  const res = await fetch(`${gateway}/bookstore.marketplace.v1.MarketplaceService/GetBook`, {
    method: "POST",
    headers: { "content-type": "application/grpc-web-text", accept: "application/grpc-web-text", "x-grpc-web": "1" },
    body: Buffer.from(frame).toString("base64"),
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type"), /^application\/grpc-web-text/);
  const frames = decodeFrames(Buffer.from(await res.text(), "base64"));
  const book = fromBinary(GetBookResponseSchema, frames.find((f) => f.flag === 0).data).book;
  assert.equal(book.id, 1n);
  assert.match(Buffer.from(frames.find((f) => f.flag === 0x80).data).toString(), /grpc-status: ?0/);
});

await check("a live feed carries what another client rates", async () => {
  const other = connect(gateway);
  const email2 = `grpc-web-other-${unique}@example.com`;
  await outcome(() => other.users.createUser({ email: email2, displayName: "Other Reader", password }));
  const token2 = (await outcome(() => other.users.signIn({ email: email2, password }))).ok.accessToken;
  const seen = [];
  const controller = new AbortController();
  const ended = watch(api, 7, (event) => seen.push(event), { signal: controller.signal });
  // The feed is live once the stream's headers arrived; rating until one is seen covers the gap.
  const until = Date.now() + 10_000;
  let stars = 1;
  while (!seen.some((e) => e.rating.stars === stars) && Date.now() < until) {
    stars = (stars % 5) + 1;
    const r = await outcome(() => other.recommendations.rateBook({ bookId: 7n, stars }, options({ token: token2 })));
    assert.ok(r.ok, JSON.stringify(r));
    await new Promise((done) => setTimeout(done, 200));
  }
  controller.abort();
  const last = seen.at(-1);
  assert.ok(last, "an event arrived");
  assert.equal(last.rating.bookId, "7");
  assert.equal(last.rating.userId, "", "the feed is public: no user ids");
  expectCode(await ended, "CANCELED");
});

async function setFaults(rules) {
  const res = await fetch(faults, { method: "PUT", body: JSON.stringify({ rules }) });
  assert.ok(res.ok, `faults: ${res.status} ${await res.text()}`);
}

function decodeFrames(bytes) {
  const frames = [];
  for (let at = 0; at + 5 <= bytes.length; ) {
    const length = bytes.readUInt32BE(at + 1);
    frames.push({ flag: bytes[at], data: bytes.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  return frames;
}

async function trailerStatus(res) {
  const frames = decodeFrames(Buffer.from(await res.arrayBuffer()));
  const trailer = frames.find((f) => f.flag === 0x80);
  return trailer ? /grpc-status: ?(\d+)/.exec(Buffer.from(trailer.data).toString())?.[1] : null;
}

console.log("all gRPC-Web checks passed");
