/* irnbench report: sortable tables (vanilla JS, no dependencies).
 * Click a header of a table.sortable to sort its rows: numeric columns (data-type="num")
 * start descending, text columns ascending; a second click reverses. Each <tbody> is sorted on
 * its own (measured rows stay above paper-reported ones); a tbody with data-nosort is left alone.
 * Empty cells always go last. Cells may carry data-sort with the exact value to sort by.
 * Test hook: a URL hash "#sort=T:C[:asc|desc][,T:C...]" sorts table T (index among
 * table.sortable in document order) by column C on load.
 */
(function () {
  "use strict";
  function cellKey(row, col) {
    var cell = row.cells[col];
    if (!cell) { return ""; }
    var v = cell.getAttribute("data-sort");
    if (v === null) { v = cell.textContent; }
    return v.trim();
  }
  function asNumber(s) {
    if (s === "") { return NaN; }
    if (s === "\u221e") { return Infinity; }
    var n = Number(s.replace(/\u2212/g, "-").replace(/,/g, ""));
    return n;
  }
  function sortTable(table, col, dir) {
    var head = table.tHead && table.tHead.rows[0];
    if (!head || col < 0 || col >= head.cells.length) { return; }
    var th = head.cells[col];
    var numeric = th.getAttribute("data-type") === "num";
    if (dir !== "asc" && dir !== "desc") {
      var cur = th.getAttribute("aria-sort");
      if (cur === "ascending") { dir = "desc"; }
      else if (cur === "descending") { dir = "asc"; }
      else { dir = numeric ? "desc" : "asc"; }
    }
    var sign = dir === "asc" ? 1 : -1;
    function compare(a, b) {
      var ka = cellKey(a, col), kb = cellKey(b, col);
      if (ka === "" || kb === "") { return (ka === "") - (kb === ""); }
      var na = asNumber(ka), nb = asNumber(kb);
      if (!isNaN(na) && !isNaN(nb)) {
        return na === nb ? 0 : (na < nb ? -sign : sign);
      }
      return sign * ka.localeCompare(kb, undefined, {numeric: true, sensitivity: "base"});
    }
    for (var b = 0; b < table.tBodies.length; b++) {
      var body = table.tBodies[b];
      if (body.hasAttribute("data-nosort")) { continue; }
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(compare);
      for (var i = 0; i < rows.length; i++) { body.appendChild(rows[i]); }
    }
    for (var h = 0; h < head.cells.length; h++) { head.cells[h].removeAttribute("aria-sort"); }
    th.setAttribute("aria-sort", dir === "asc" ? "ascending" : "descending");
    table.setAttribute("data-sorted", col + ":" + dir);
  }
  var tables = document.querySelectorAll("table.sortable");
  Array.prototype.forEach.call(tables, function (table) {
    var head = table.tHead && table.tHead.rows[0];
    if (!head) { return; }
    Array.prototype.forEach.call(head.cells, function (th, col) {
      th.addEventListener("click", function () { sortTable(table, col); });
      th.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); sortTable(table, col); }
      });
    });
  });
  var m = /(?:^#|&)sort=([^&]*)/.exec(window.location.hash || "");
  if (m) {
    decodeURIComponent(m[1]).split(",").forEach(function (spec) {
      var p = spec.split(":");
      var t = parseInt(p[0], 10), c = parseInt(p[1], 10);
      if (!isNaN(t) && !isNaN(c) && tables[t]) { sortTable(tables[t], c, p[2]); }
    });
  }
  window.irnbenchSortTable = sortTable;
}());
