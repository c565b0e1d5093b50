// The live run page. The server renders everything; this script keeps the page's live part
// current without reloads, and the page works without it.
//
// - It listens on the run's WebSocket from the last event the page reflects (?after=SEQ).
//   Each event means "something changed": the live part is fetched again (?fragment=1,
//   debounced) and swapped in, keeping open <details>, focus and typed comments.
// - Streamed tokens (delta messages) are appended as text to the running step's output.
// - Event seqs are contiguous: a jump means the channel dropped some, and the missing ones
//   are read from the events API. A closed socket is reopened with backoff from the last seq.
// - While no socket is live (none yet, refused, or the server has none), the live part is
//   polled instead, so the page follows the run either way.
(function () {
  "use strict";
  var root = document.querySelector("[data-run-live]");
  if (!root) return;

  var fragmentUrl = root.getAttribute("data-fragment-url");
  var socketPath = root.getAttribute("data-socket-path");
  var eventsUrl = root.getAttribute("data-events-url");
  var announcer = document.querySelector("[data-run-announce]");
  var note = document.querySelector("[data-live-note]");

  var POLL_MS = 2000;
  // With a live socket the events API is still asked now and then: an announcement the
  // channel dropped shows as a gap only when a later one arrives, and a run that is waiting
  // for a person may send none for hours.
  var CHECK_MS = 15000;
  var DEBOUNCE_MS = 120;
  var DONE = ["succeeded", "failed", "skipped", "cancelled"];

  var lastSeq = Number(live().getAttribute("data-last-seq")) || 0;
  var highestSeen = lastSeq; // the largest seq any message mentioned
  var streams = {}; // step pk -> text streamed in its current attempt
  var socket = null;
  var socketLive = false; // replay done: events arrive as they happen
  var failures = 0; // consecutive socket failures, for the backoff
  var reconnectTimer = null;
  var pollTimer = null;
  var refreshTimer = null;
  var refreshing = false;
  var refreshAgain = false;
  var catchingUp = false;
  var recheck = 0; // catch-ups repeated because the API had less than announced
  var stopped = false;
  var skew = 0; // server clock minus this browser's, for the elapsed times

  function live() { return root.querySelector("[data-run-status]"); }
  function finished() { var s = live(); return !s || s.getAttribute("data-terminal") === "true"; }

  function say(text) {
    if (!announcer) return;
    // Clearing first makes a repeated message count as a change for screen readers.
    announcer.textContent = "";
    window.setTimeout(function () { announcer.textContent = text; }, 50);
  }

  function setNote(text) { if (note) note.textContent = text; }

  // Swapping in a fresh live part ----------------------------------------------------------

  function keepState() {
    var state = { details: {}, values: {}, scroll: {}, focus: null };
    root.querySelectorAll("details[id]").forEach(function (d) { state.details[d.id] = d.open; });
    root.querySelectorAll("textarea[id], input[id]").forEach(function (field) {
      if (field.value !== field.defaultValue) state.values[field.id] = field.value;
    });
    root.querySelectorAll(".stream[data-stream-step], .output-box[id]").forEach(function (box) {
      if (box.scrollTop) state.scroll[box.getAttribute("data-stream-step") || box.id] = box.scrollTop;
    });
    var active = document.activeElement;
    if (active && active !== root && root.contains(active) && active.id) {
      state.focus = { id: active.id, start: active.selectionStart, end: active.selectionEnd };
    }
    return state;
  }

  function restoreState(state) {
    Object.keys(state.details).forEach(function (id) {
      var d = document.getElementById(id);
      if (d && d.tagName === "DETAILS") d.open = state.details[id];
    });
    Object.keys(state.values).forEach(function (id) {
      var field = document.getElementById(id);
      if (field && "value" in field) field.value = state.values[id];
    });
    if (state.focus) {
      var target = document.getElementById(state.focus.id);
      if (target && root.contains(target)) {
        target.focus({ preventScroll: true });
        if (state.focus.start != null && typeof target.setSelectionRange === "function") {
          try { target.setSelectionRange(state.focus.start, state.focus.end); } catch (e) { /* not a text field */ }
        }
      }
    }
  }

  function fillStreams(state) {
    root.querySelectorAll("[data-step-pk]").forEach(function (panel) {
      if (DONE.indexOf(panel.getAttribute("data-step-status")) >= 0) delete streams[panel.getAttribute("data-step-pk")];
    });
    root.querySelectorAll(".stream[data-stream-step]").forEach(function (box) {
      var key = box.getAttribute("data-stream-step");
      if (streams[key]) box.textContent = streams[key];
      if (state && state.scroll[key]) box.scrollTop = state.scroll[key];
    });
    if (state) {
      root.querySelectorAll(".output-box[id]").forEach(function (box) {
        if (state.scroll[box.id]) box.scrollTop = state.scroll[box.id];
      });
    }
  }

  function decisionsShown() {
    return Array.prototype.map.call(root.querySelectorAll("[data-decision]"), function (section) {
      return section.getAttribute("data-decision");
    });
  }

  function swap(html) {
    var before = live() ? live().getAttribute("data-run-status") : null;
    var decisionsBefore = decisionsShown();
    var state = keepState();
    root.innerHTML = html;
    restoreState(state);
    fillStreams(state);
    syncClock();
    tick();
    var now = live();
    if (!now) return;
    // The fragment reflects every event up to its seq: those need no fetching any more.
    var seq = Number(now.getAttribute("data-last-seq")) || 0;
    if (seq > lastSeq) lastSeq = seq;
    if (seq > highestSeen) highestSeen = seq;
    var messages = [];
    if (now.getAttribute("data-run-status") !== before) messages.push("Run status: " + now.getAttribute("data-run-label") + ".");
    decisionsShown().forEach(function (node) {
      if (decisionsBefore.indexOf(node) < 0) messages.push("Step " + node + " is waiting for a decision.");
    });
    if (messages.length) say(messages.join(" "));
    if (finished()) finish();
  }

  function refresh() {
    if (stopped) return;
    if (refreshing) { refreshAgain = true; return; }
    refreshing = true;
    fetch(fragmentUrl, { credentials: "same-origin", cache: "no-store", headers: { "X-Requested-With": "fetch" } })
      .then(function (response) {
        // A redirect is the login page (the session ended): nothing to swap in.
        if (response.redirected) return Promise.reject("signed out");
        if (!response.ok) return Promise.reject(response.status);
        return response.text();
      })
      .then(swap)
      .catch(function (status) {
        if (status === 404 || status === 403) stop("This run is no longer available; live updates stopped.");
        else if (status === "signed out") stop("You are signed out; live updates stopped. Reload the page to sign in.");
      })
      .then(function () {
        refreshing = false;
        if (refreshAgain) { refreshAgain = false; scheduleRefresh(0); }
      });
  }

  function scheduleRefresh(delay) {
    if (refreshTimer !== null || stopped) return;
    refreshTimer = window.setTimeout(function () { refreshTimer = null; refresh(); }, delay == null ? DEBOUNCE_MS : delay);
  }

  // Events ------------------------------------------------------------------------------

  function take(event) {
    // A step's next attempt streams its text afresh. (Not the first attempt: its first tokens
    // may have come before its start event, when that event was read late from the API.)
    var data = event.data || {};
    if (data.step == null) return;
    if (event.type === "step.retrying" || (event.type === "step.started" && data.attempt > 1)) {
      delete streams[String(data.step)];
    }
  }

  function onEvent(event) {
    if (!event || typeof event.seq !== "number") return;
    if (event.seq > highestSeen) highestSeen = event.seq;
    if (event.seq <= lastSeq) return; // already reflected (replay overlap, or a fragment got there first)
    if (event.seq > lastSeq + 1) { catchUp(); return; }
    lastSeq = event.seq;
    take(event);
    scheduleRefresh();
  }

  // Reads the events after lastSeq from the API, page by page, then refreshes once.
  function catchUp() {
    if (catchingUp || !eventsUrl) return;
    catchingUp = true;
    function page() {
      var url = eventsUrl + "?after=" + encodeURIComponent(lastSeq);
      return fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : Promise.reject(response.status); })
        .then(function (body) {
          (body.results || []).forEach(function (event) {
            if (event.seq === lastSeq + 1) { lastSeq = event.seq; take(event); }
          });
          if (body.more) return page();
        });
    }
    page()
      .catch(function () { /* the refresh below reads the state from the page anyway */ })
      .then(function () {
        catchingUp = false;
        scheduleRefresh(0);
        if (highestSeen <= lastSeq) { recheck = 0; return; }
        // A message announced more than the API had when it answered: look once more, then
        // trust the database (it is the truth; the socket only announces).
        if (recheck++ < 1) window.setTimeout(catchUp, 500);
        else { recheck = 0; highestSeen = lastSeq; }
      });
  }

  function onDelta(delta) {
    if (!delta || delta.step == null || typeof delta.text !== "string") return;
    var key = String(delta.step);
    streams[key] = (streams[key] || "") + delta.text;
    var box = root.querySelector('.stream[data-stream-step="' + CSS.escape(key) + '"]');
    if (!box) return; // the panel shows it running after the next refresh, with the text so far
    var atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 16;
    box.appendChild(document.createTextNode(delta.text));
    if (atBottom) box.scrollTop = box.scrollHeight;
  }

  // The socket, and polling while there is none -----------------------------------------

  function connect() {
    reconnectTimer = null;
    if (stopped || finished()) return;
    if (!("WebSocket" in window) || !socketPath) { startPolling(); return; }
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var ws;
    try {
      ws = new WebSocket(scheme + window.location.host + socketPath + "?after=" + encodeURIComponent(lastSeq));
    } catch (e) {
      startPolling();
      reconnectLater();
      return;
    }
    socket = ws;
    ws.onmessage = function (message) {
      var data;
      try { data = JSON.parse(message.data); } catch (e) { return; }
      if (data.type === "event") onEvent(data.event);
      else if (data.type === "delta") onDelta(data.delta);
      else if (data.type === "replayed") {
        socketLive = true;
        failures = 0;
        stopPolling();
        setNote("Live: this page follows the run as it happens.");
        if (typeof data.last_seq === "number" && data.last_seq > highestSeen) highestSeen = data.last_seq;
        if (highestSeen > lastSeq) catchUp();
      }
    };
    ws.onclose = function (event) {
      if (socket === ws) socket = null;
      socketLive = false;
      if (stopped || finished()) return;
      if (event.code === 4401 || event.code === 4403) {
        // Refused: signed out or no access. Polling finds out which and stops on a 404.
        startPolling();
        return;
      }
      failures += 1;
      startPolling();
      reconnectLater();
    };
  }

  function reconnectLater() {
    if (reconnectTimer !== null || stopped) return;
    // 1 s, 2 s, 4 s … up to 30 s, with jitter so many pages do not reconnect in step.
    var delay = Math.min(30000, 1000 * Math.pow(2, Math.max(failures - 1, 0))) * (0.75 + Math.random() * 0.5);
    reconnectTimer = window.setTimeout(connect, delay);
  }

  function check() {
    if (stopped || finished() || !socketLive || catchingUp || !eventsUrl) return;
    var url = eventsUrl + "?limit=1&after=" + encodeURIComponent(lastSeq);
    fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (body) {
        if (body && body.results && body.results.length && body.results[0].seq > lastSeq) {
          highestSeen = Math.max(highestSeen, body.results[0].seq);
          catchUp();
        }
      })
      .catch(function () { /* asked again on the next round */ });
  }

  function startPolling() {
    if (pollTimer !== null || stopped || finished()) return;
    setNote("Following the run by checking every few seconds.");
    pollTimer = window.setInterval(function () {
      if (socketLive || finished()) { stopPolling(); return; }
      if (!document.hidden) refresh();
    }, POLL_MS);
  }

  function stopPolling() {
    if (pollTimer !== null) { window.clearInterval(pollTimer); pollTimer = null; }
  }

  function finish() {
    // A finished run changes no more: let go of the socket and the timers.
    stopPolling();
    if (reconnectTimer !== null) { window.clearTimeout(reconnectTimer); reconnectTimer = null; }
    if (socket) { var ws = socket; socket = null; ws.close(1000); }
    setNote("This run has finished.");
  }

  function stop(message) {
    stopped = true;
    finish();
    setNote(message);
    say(message);
  }

  // Elapsed times of what is still running tick every second between refreshes.
  function format(seconds) {
    if (seconds < 1) return Math.round(seconds * 1000) + " ms";
    if (seconds < 60) return seconds.toFixed(1) + " s";
    var whole = Math.round(seconds), minutes = Math.floor(whole / 60), rest = whole % 60;
    if (minutes < 60) return minutes + " min " + (rest < 10 ? "0" : "") + rest + " s";
    var hours = Math.floor(minutes / 60), mins = minutes % 60;
    return hours + " h " + (mins < 10 ? "0" : "") + mins + " min";
  }

  function syncClock() {
    var server = live() && Date.parse(live().getAttribute("data-now"));
    if (server) skew = server - Date.now();
  }

  function tick() {
    var now = Date.now() + skew;
    root.querySelectorAll("[data-elapsed-from]").forEach(function (el) {
      var from = Date.parse(el.getAttribute("data-elapsed-from"));
      if (!isNaN(from)) el.textContent = format(Math.max(0, now - from) / 1000);
    });
  }

  syncClock();
  window.setInterval(function () { if (!finished()) tick(); }, 1000);
  window.setInterval(check, CHECK_MS);
  window.addEventListener("pagehide", function () { if (socket) socket.close(1000); });
  if (!finished()) {
    setNote("Connecting for live updates…");
    connect();
  }
})();
