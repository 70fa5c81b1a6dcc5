// Live logs on the app page: the server-rendered lines stay, new ones are appended as they are written (Server-Sent
// Events from /apps/<app>/logs/stream, resuming after the last line shown). Text only: never parsed as HTML.
(function () {
  "use strict";
  var box = document.getElementById("logs");
  if (!box || !window.EventSource) return;
  var pre = document.getElementById("log-lines");
  var status = document.getElementById("logs-live");
  var empty = document.getElementById("logs-empty");
  var source = new EventSource(box.getAttribute("data-stream"));
  source.onopen = function () { status.textContent = "live"; };
  source.onerror = function () { status.textContent = "reconnecting…"; };
  source.onmessage = function (event) {
    var line = JSON.parse(event.data);
    var atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    var text = line.time.slice(0, 23).replace("T", " ") + " " + line.process + " " + line.release + " | " + line.text;
    pre.appendChild(document.createTextNode(text + "\n"));
    if (empty) { empty.remove(); empty = null; }
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  };
  window.addEventListener("pagehide", function () { source.close(); });
})();

// Metrics graphs: the server draws them (inline SVG); every minute a fresh copy of the section replaces this one
// (same-origin HTML rendered and escaped by the server's template; nothing from the page's data is parsed).
(function () {
  "use strict";
  var section = document.getElementById("metrics");
  if (!section || !window.fetch || !window.DOMParser) return;
  function refresh() {
    var current = document.getElementById("metrics");
    fetch(current.getAttribute("data-refresh"), { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("metrics");
        if (fresh) current.replaceWith(document.importNode(fresh, true));
      })
      .catch(function () { /* the graphs shown stay; the next minute tries again */ });
  }
  setInterval(refresh, 60000);
})();

// A deploy starting (a push, a redeploy, someone else's config change) opens its log: the app page asks every two
// seconds whether one runs and goes to its log page, once per deploy and tab (deploy.js marks it seen there, so
// coming back to the app page while it still runs does not bounce).
(function () {
  "use strict";
  var section = document.getElementById("deploys");
  if (!section || !window.fetch || !window.sessionStorage) return;
  var url = section.getAttribute("data-running");
  function check() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (running) {
        if (running.id !== null && !window.sessionStorage.getItem("paas-seen-deploy-" + running.id)) {
          window.location.assign(running.url);
          return;
        }
        setTimeout(check, 2000);
      })
      .catch(function () { setTimeout(check, 5000); });
  }
  check();
})();
