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
