// What the browser test's page exposes: window.bookstore, the functions of client.js bound to the
// gateway named in the page's query (?gateway=http://127.0.0.1:8080), for the test to call.
import { connect, options, outcome, traceparent, watch } from "./client.js";

const gateway = new URL(location.href).searchParams.get("gateway");
const clients = connect(gateway);
const events = [];

window.bookstore = {
  getBook: (id, opts) => outcome(() => clients.marketplace.getBook({ id: BigInt(id) }, options(opts))),
  search: (query, opts) => outcome(() => clients.marketplace.searchBooks({ query, pageSize: 5 }, options(opts))),
  createUser: (email, displayName, password) =>
    outcome(() => clients.users.createUser({ email, displayName, password })),
  signIn: (email, password) => outcome(() => clients.users.signIn({ email, password })),
  rate: (bookId, stars, opts) =>
    outcome(() => clients.recommendations.rateBook({ bookId: BigInt(bookId), stars }, options(opts))),
  forMe: (opts) => outcome(() => clients.recommendations.listRecommendationsForMe({ pageSize: 5 }, options(opts))),
  traceparent,
  // The live feed: started once, its events collected in `events` (and shown on the page).
  watch(bookId) {
    const list = document.getElementById("events");
    const controller = new AbortController();
    const ended = watch(clients, bookId, (event) => {
      events.push(event);
      const item = document.createElement("li");
      item.textContent = `${event.rating.bookId} rated ${event.rating.stars}`;
      list.append(item);
    }, { signal: controller.signal });
    window.bookstore.stopWatching = () => controller.abort();
    window.bookstore.watchEnded = ended;
    return true;
  },
  events: () => events,
};
document.getElementById("status").textContent = "ready";
