// Live progress: every element marked data-campaign is refreshed from /api/campaigns
// every 2 s (the page shows the same numbers without this script).
(function () {
  "use strict";
  var bars = document.querySelectorAll("[data-campaign]");
  if (!bars.length) return;
  function text(states) {
    return Object.keys(states).sort().map(function (s) { return s + " " + states[s]; }).join(", ");
  }
  function update(row) {
    var pct = row.jobs ? (100 * row.ended) / row.jobs : 0;
    document.querySelectorAll('[data-campaign="' + row.id + '"]').forEach(function (el) {
      el.dataset.ended = row.ended;
      el.dataset.jobs = row.jobs;
      el.querySelector(".fill").style.width = pct.toFixed(1) + "%";
      el.querySelector(".count").textContent = row.ended + " / " + row.jobs + " ended";
    });
    document.querySelectorAll('[data-pools="' + row.id + '"]').forEach(function (el) {
      var tag = el.tagName === "TD" ? "div" : "span";
      el.replaceChildren.apply(el, Object.keys(row.pools).sort().map(function (pool) {
        var line = document.createElement(tag);
        line.textContent = pool + ": " + text(row.pools[pool]);
        return line;
      }));
    });
    document.querySelectorAll('[data-validity="' + row.id + '"]').forEach(function (el) {
      var ok = document.createElement("span");
      ok.className = "ok";
      ok.textContent = (row.validity.valid || 0) + " valid";
      var parts = [ok];
      if (row.validity.invalid) {
        var bad = document.createElement("span");
        bad.className = "bad";
        bad.textContent = row.validity.invalid + " invalid";
        parts.push(document.createTextNode(" · "), bad);
      }
      el.replaceChildren.apply(el, parts);
    });
  }
  function poll() {
    var ids = Array.prototype.map.call(bars, function (b) { return Number(b.dataset.campaign); });
    var one = ids.length === 1 && !document.getElementById("campaigns");
    var url = one ? "/api/campaigns/" + ids[0] : "/api/campaigns?limit=" + (ids.length + 50);
    fetch(url, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : []; })
      .then(function (rows) {
        (one ? [rows] : rows).forEach(function (row) { if (row && ids.indexOf(row.id) >= 0) update(row); });
      })
      .catch(function () {})
      .then(function () { setTimeout(poll, 2000); });
  }
  setTimeout(poll, 2000);
})();
