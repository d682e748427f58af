// The run log's filters. On the server, choosing a filter loads the page it names
// (/runs?status=miss); in the one-file report, which has every run in it, they hide
// the rows that don't match, and a link to #runs?status=miss sets them.
"use strict";
(function () {
  const form = document.getElementById("run-filter");
  if (!form) return;
  const inReport = form.dataset.static !== undefined;
  const fields = ["status", "tag", "task", "since"];
  const rows = Array.from(document.querySelectorAll("#run-table tbody tr"));
  const count = document.getElementById("run-count");
  const none = document.getElementById("no-runs");

  function admits(row, wanted, now) {
    const d = row.dataset;
    return (
      (!wanted.status || d.status === wanted.status) &&
      (!wanted.tag || JSON.parse(d.tags).includes(wanted.tag)) &&
      (!wanted.task || d.task === wanted.task) &&
      (!wanted.since || Number(d.started) >= now - Number(wanted.since))
    );
  }

  function apply() {
    const wanted = {};
    for (const name of fields) wanted[name] = form.elements[name].value;
    const now = Date.now() / 1000;
    let shown = 0;
    for (const row of rows) {
      row.hidden = !admits(row, wanted, now);
      if (!row.hidden) shown += 1;
    }
    count.textContent = shown + " of " + rows.length + " runs";
    none.hidden = shown > 0;
  }

  function fromHash() {
    const hash = window.location.hash;
    if (!hash.startsWith("#runs")) return;
    const query = new URLSearchParams(hash.slice(hash.indexOf("?") + 1 || hash.length));
    for (const name of fields) {
      const field = form.elements[name];
      field.value = query.get(name) || "";
      if (field.selectedIndex < 0) field.value = ""; // a value the log has no option for
    }
    apply();
    document.getElementById("runs").scrollIntoView();
  }

  if (inReport) {
    form.addEventListener("change", apply);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      apply();
    });
    window.addEventListener("hashchange", fromHash);
    fromHash();
  } else {
    form.addEventListener("change", function () {
      form.requestSubmit();
    });
  }
})();
