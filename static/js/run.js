// Live run page without WebSockets: while the run is not finished, fetch the page's live
// part every 2 s and swap it in. The page works without this; it only saves reloading.
(function () {
  "use strict";
  var root = document.querySelector("[data-run-live]");
  if (!root) return;
  var url = root.getAttribute("data-fragment-url");
  var announce = document.querySelector("[data-run-announce]");

  function state() { return root.querySelector("[data-run-status]"); }
  function finished() { var s = state(); return !s || s.getAttribute("data-terminal") === "true"; }

  // Someone typing a comment or focused on a control keeps the page still until they leave it.
  function busy() {
    var active = document.activeElement;
    if (active && root.contains(active) && active.matches("textarea, input, select")) return true;
    return Array.prototype.some.call(root.querySelectorAll("textarea"), function (t) { return t.value !== ""; });
  }

  function refresh() {
    if (finished()) return;
    if (document.hidden || busy()) return schedule();
    fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
      .then(function (html) {
        var before = state() && state().getAttribute("data-run-status");
        var open = Array.prototype.map.call(root.querySelectorAll("details[open][id]"), function (d) { return d.id; });
        root.innerHTML = html;
        open.forEach(function (id) { var d = document.getElementById(id); if (d) d.open = true; });
        var after = state();
        if (announce && after && after.getAttribute("data-run-status") !== before) {
          announce.textContent = "Run status: " + after.getAttribute("data-run-label");
        }
      })
      .catch(function () { /* a missed poll is retried on the next tick */ })
      .then(schedule);
  }

  function schedule() { if (!finished()) window.setTimeout(refresh, 2000); }
  schedule();
})();
