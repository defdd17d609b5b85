// The Bookstore's services called over gRPC-Web through the gateway, with the client generated
// from protos/ by protoc-gen-es and Connect's gRPC-Web transport. Shared by the page the browser
// tests load (page.js) and by the Node checks (node-check.mjs): both call these functions and get
// plain JSON back, a failure as { code, message } with the gRPC status code's name.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { MarketplaceService } from "../gen/bookstore/marketplace/v1/marketplace_pb.js";
import { RecommendationsService } from "../gen/bookstore/recommendations/v1/recommendations_pb.js";
import { UsersService } from "../gen/bookstore/users/v1/users_pb.js";

/** A W3C traceparent with a fresh trace id, so a call's trace can be looked up by that id. */
export function traceparent() {
  const hex = (bytes) =>
    Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0")).join("");
  return `00-${hex(16)}-${hex(8)}-01`;
}

/** Clients of the three services through the gateway at `baseUrl` (binary protobuf framing). */
export function connect(baseUrl) {
  const transport = createGrpcWebTransport({ baseUrl, useBinaryFormat: true });
  return {
    marketplace: createClient(MarketplaceService, transport),
    recommendations: createClient(RecommendationsService, transport),
    users: createClient(UsersService, transport),
  };
}

/** Call options: the bearer token, a deadline and a traceparent, each when given. */
export function options({ token, timeoutMs, trace, signal } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (trace) headers.traceparent = trace;
  return { headers, timeoutMs, signal };
}

/** `{ ok: value }`, or `{ code: "NOT_FOUND", message }` for a gRPC status. */
export async function outcome(call) {
  try {
    return { ok: plain(await call()) };
  } catch (e) {
    const err = ConnectError.from(e);
    return { code: codeName(err.code), message: err.rawMessage };
  }
}

/** The gRPC status name of a Connect code (Code.NotFound is 5: "NOT_FOUND"). */
export function codeName(code) {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/** A message as JSON-friendly values: 64-bit integers (bigint) become strings. */
export function plain(value) {
  return JSON.parse(JSON.stringify(value, (_, v) => (typeof v === "bigint" ? v.toString() : v)));
}

/**
 * Watches ratings of `bookId` (every book when 0): calls `onEvent` with each event (plain JSON)
 * until `signal` aborts or the stream ends; resolves with how it ended ({ ended } or a status).
 */
export async function watch(clients, bookId, onEvent, opts = {}) {
  return outcome(async () => {
    for await (const event of clients.recommendations.watchRatings({ bookId: BigInt(bookId) }, options(opts))) {
      onEvent(plain(event));
    }
    return { ended: true };
  });
}
