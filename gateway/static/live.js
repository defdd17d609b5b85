// The live strip: new ratings from the gateway's Server-Sent Events feed. Pages work without it.
(function () {
  var list = document.getElementById("live-feed");
  if (!list || !window.EventSource) return;
  var url = "/api/v1/ratings/stream" + (list.dataset.book ? "?book_id=" + list.dataset.book : "");
  var source = new EventSource(url);
  source.addEventListener("rating", function (message) {
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
  });
})();
