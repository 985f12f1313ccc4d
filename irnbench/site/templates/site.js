/* irnbench leaderboard site: filter a leaderboard's rows by weights tag (vanilla JS).
 * The select#tag-filter hides every row of table.leaderboard whose data-tag differs; "" shows
 * all. A URL hash "#tag=NAME" selects NAME on load (shareable, and the browser test's hook).
 */
(function () {
  "use strict";
  var select = document.getElementById("tag-filter");
  if (!select) { return; }
  function apply() {
    var want = select.value, shown = 0, total = 0;
    var rows = document.querySelectorAll("table.leaderboard tbody tr[data-tag]");
    Array.prototype.forEach.call(rows, function (tr) {
      var hide = want !== "" && tr.getAttribute("data-tag") !== want;
      tr.classList.toggle("hidden", hide);
      total += 1;
      if (!hide) { shown += 1; }
    });
    var count = document.getElementById("tag-count");
    if (count) { count.textContent = want === "" ? "" : shown + " of " + total + " rows"; }
    document.body.setAttribute("data-filter", want);
  }
  select.addEventListener("change", apply);
  var m = /(?:^#|&)tag=([^&]*)/.exec(window.location.hash || "");
  if (m) {
    var want = decodeURIComponent(m[1]);
    Array.prototype.forEach.call(select.options, function (o) {
      if (o.value === want) { select.value = want; }
    });
  }
  apply();
  window.irnbenchFilterTag = function (tag) { select.value = tag; apply(); };
}());
