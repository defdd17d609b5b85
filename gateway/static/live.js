// The live strip: new ratings from the gateway's Server-Sent Events feed. Pages work without it.
(function () {
  var list = document.getElementById("live-feed");
  if (!list || !window.EventSource) return;
  var url = "/api/v1/ratings/stream" + (list.dataset.book ? "?book_id=" + list.dataset.book : "");
  var source = null;

  function show(message) {
    var e = JSON.parse(message.data);
    var item = document.createElement("li");
    var link = document.createElement("a");
    link.href = "/books/" + e.book_id;
    link.textContent = e.title || "Book " + e.book_id;
    item.textContent = e.kind === "deleted" ? "Rating removed: " : "\u2605".repeat(e.stars) + " ";
    item.appendChild(link);
    var placeholder = list.querySelector(".muted");
    if (placeholder) placeholder.remove();
    list.insertBefore(item, list.firstChild);
    while (list.children.length > 8) list.removeChild(list.lastChild);
  }

  function open() {
    if (source) return;
    source = new EventSource(url);
    source.addEventListener("rating", show);
  }

  function close() {
    if (!source) return;
    source.close();
    source = null;
  }

  open();
  // A page left for another stays in the back/forward cache; its feed must not stay connected
  // (a browser opens at most 6 connections per host over HTTP/1.1, and every cached page would
  // hold one), so it closes on the way out and opens again if the page is shown from the cache.
  window.addEventListener("pagehide", close);
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) open();
  });
})();
