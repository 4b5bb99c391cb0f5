// The connections page's script: no build step, no library. Everything works without it; with it
// the link name is shown as it will be derived, only the chosen service's scopes are offered,
// and the files' progress updates every second without reloading.
"use strict";

(function () {
  // The rule of storage.records.link_name: lowercase, runs of other characters become "_",
  // no "_" at either end ("Team Dropbox" -> "team_dropbox"). The server derives it anyway.
  function linkName(name) {
    return name.toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_+|_+$/g, "");
  }

  function humanSize(size) {
    if (size < 1024) return size + " B";
    var value = size;
    var units = ["KB", "MB", "GB"];
    for (var i = 0; i < units.length; i++) {
      value /= 1024;
      if (value < 1024 || i === units.length - 1) return value.toFixed(1) + " " + units[i];
    }
    return size + " B";
  }

  function setUpCreateForm() {
    var name = document.getElementById("create-name");
    var out = document.getElementById("create-link");
    if (name && out) {
      var show = function () { out.value = linkName(name.value); out.textContent = out.value; };
      name.addEventListener("input", show);
      show();
    }
    var service = document.getElementById("create-service");
    if (!service) return;
    var groups = document.querySelectorAll("#create-scopes fieldset.scopes");
    var choose = function () {
      groups.forEach(function (group) {
        var on = group.getAttribute("data-service") === service.value;
        group.hidden = !on;
        group.disabled = !on; // a disabled fieldset's inputs are not sent
      });
    };
    service.addEventListener("change", choose);
    choose();
  }

  // -- live progress ------------------------------------------------------------------------

  var list = document.getElementById("file-list");
  var blank = document.getElementById("file-template");
  var seen = {}; // job id -> {t, done, rate}

  function rowFor(file) {
    var rows = list.querySelectorAll("li.file");
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].getAttribute("data-job") === file.id) return rows[i];
    }
    var row = blank.content.firstElementChild.cloneNode(true);
    row.setAttribute("data-job", file.id);
    row.querySelectorAll("input[name=job]").forEach(function (input) { input.value = file.id; });
    row.querySelectorAll(".vh").forEach(function (span) { span.textContent = " " + file.name; });
    row.querySelector(".file-bar").setAttribute("aria-label", "Progress of " + file.name);
    list.appendChild(row);
    return row;
  }

  function rateOf(file) {
    var now = performance.now() / 1000;
    var last = seen[file.id];
    var rate = last ? last.rate : 0;
    if (last && now > last.t && file.done >= last.done) {
      var current = (file.done - last.done) / (now - last.t);
      rate = last.rate ? 0.5 * last.rate + 0.5 * current : current;
    }
    seen[file.id] = { t: now, done: file.done, rate: rate };
    return rate;
  }

  function show(file) {
    var row = rowFor(file);
    var inFlight = file.state === "queued" || file.state === "keep" || file.state === "done";
    row.setAttribute("data-state", file.state);
    row.querySelector(".file-name").textContent = file.name;
    row.querySelector(".file-state").textContent = file.label;
    var bar = row.querySelector(".file-bar");
    bar.hidden = !inFlight;
    if (file.percent === null) bar.removeAttribute("value"); else bar.value = file.percent;
    bar.textContent = (file.percent || 0) + "%";
    row.querySelector(".file-figures").hidden = !inFlight;
    row.querySelector(".file-percent").textContent = file.percent === null ? "" : file.percent + "%";
    row.querySelector(".file-bytes").textContent =
      humanSize(file.done) + (file.size ? " of " + humanSize(file.size) : "");
    var rate = rateOf(file);
    row.querySelector(".file-rate").textContent =
      file.state === "queued" && rate > 0 ? humanSize(Math.round(rate)) + "/s" : "";
    var kept = row.querySelector(".file-kept");
    kept.hidden = !file.kept_until;
    row.querySelector(".file-expiry").textContent = file.kept_until || "";
    var error = row.querySelector(".file-error");
    error.hidden = !file.error;
    error.textContent = file.error || "";
    row.querySelector(".file-actions").hidden = file.state !== "failed";
  }

  function poll() {
    if (document.hidden) return;
    fetch("/connections/files.json", { credentials: "same-origin", cache: "no-store" })
      .then(function (resp) {
        if (resp.status === 401) { clearInterval(timer); return null; }
        return resp.ok ? resp.json() : null;
      })
      .then(function (data) {
        if (!data) return;
        var ids = {};
        data.files.forEach(function (file) { ids[file.id] = true; show(file); });
        list.querySelectorAll("li.file").forEach(function (row) {
          if (!ids[row.getAttribute("data-job")]) row.remove();
        });
        document.getElementById("no-files").hidden = data.files.length > 0;
      })
      .catch(function () { /* the next poll tries again */ });
  }

  setUpCreateForm();
  var timer = list && blank ? setInterval(poll, 1000) : null;
  if (timer) poll();
})();
