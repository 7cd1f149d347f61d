"use strict";
// Filter by state and sort by column; without this script the table is whole, in list order.
(function () {
  var table = document.getElementById("people");
  var controls = document.getElementById("controls");
  var shown = document.getElementById("shown");
  if (!table || !controls) { return; }
  var body = table.tBodies[0];
  var total = body.rows.length;
  controls.hidden = false;
  function count(state) {
    if (!state) { return total; }
    return body.querySelectorAll('tr[data-state="' + state + '"]').length;
  }
  controls.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-filter]");
    if (!button) { return; }
    var state = button.getAttribute("data-filter");
    if (state) { table.setAttribute("data-show", state); } else { table.removeAttribute("data-show"); }
    controls.querySelectorAll("button[data-filter]").forEach(function (other) {
      other.setAttribute("aria-pressed", other === button ? "true" : "false");
    });
    shown.textContent = count(state) + " of " + total + " shown";
  });
  var headers = table.tHead.rows[0].cells;
  function key(row, column) {
    var cell = row.cells[column];
    var given = cell.getAttribute("data-key");
    return given !== null ? given : cell.textContent.trim().toLowerCase();
  }
  Array.prototype.forEach.call(headers, function (header, column) {
    header.tabIndex = 0;
    function sort() {
      var ascending = header.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(headers, function (other) { other.removeAttribute("aria-sort"); });
      header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var rows = Array.prototype.map.call(body.rows, function (row, index) {
        return [key(row, column), index, row];
      });
      rows.sort(function (a, b) {
        if (a[0] < b[0]) { return ascending ? -1 : 1; }
        if (a[0] > b[0]) { return ascending ? 1 : -1; }
        return a[1] - b[1];
      });
      var fragment = document.createDocumentFragment();
      rows.forEach(function (entry) { fragment.appendChild(entry[2]); });
      body.appendChild(fragment);
    }
    header.addEventListener("click", sort);
    header.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sort(); }
    });
  });
}());
