// A running deploy's log, followed: asks /apps/<app>/deploys/<id>/log?offset=N every second for what was written
// since (services.deploys.deploy_log) and appends it as text nodes, never HTML. Stops once the deploy is over.
(function () {
  "use strict";
  var box = document.getElementById("deploy");
  if (!box) return;
  // the app page opens each running deploy's log once per tab: this one has been seen
  try { window.sessionStorage.setItem("paas-seen-deploy-" + box.getAttribute("data-id"), "1"); } catch (e) { /* */ }
  if (box.getAttribute("data-complete") === "true" || !window.fetch) return;
  var pre = document.getElementById("deploy-log");
  var status = document.getElementById("deploy-status");
  var live = document.getElementById("deploy-live");
  var url = box.getAttribute("data-follow");
  var offset = parseInt(box.getAttribute("data-offset"), 10) || 0;
  live.textContent = "following";

  function poll() {
    fetch(url + "?offset=" + offset, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (chunk) {
        var atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        if (chunk.lines.length) pre.appendChild(document.createTextNode(chunk.lines.join("\n") + "\n"));
        if (atBottom) pre.scrollTop = pre.scrollHeight;
        offset = chunk.next_offset;
        status.textContent = chunk.status;
        status.className = "state " + chunk.status;
        if (chunk.complete) {
          live.textContent = "finished: " + chunk.status;
          var phase = document.getElementById("deploy-phase");
          if (phase) phase.remove();
          return;
        }
        setTimeout(poll, 1000);
      })
      .catch(function () {
        live.textContent = "reconnecting…";
        setTimeout(poll, 3000);
      });
  }
  setTimeout(poll, 500);
})();
