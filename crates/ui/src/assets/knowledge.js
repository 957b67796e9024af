// The knowledge page: uploads with progress (drag and drop or the file picker), a document list
// kept current while documents are indexed, and search with the query's words marked in the
// passages. Passages are inserted as text nodes: document content never becomes markup.
(function () {
  "use strict";
  var table = document.getElementById("k-documents");
  if (!table) { return; }
  var org = table.dataset.org;
  var canWrite = table.hasAttribute("data-can-write");
  var base = "/api/orgs/" + encodeURIComponent(org) + "/knowledge/documents";

  function csrf() { var m = document.querySelector('meta[name="csrf-token"]'); return m ? m.getAttribute("content") : ""; }
  function el(tag, cls, text) { var e = document.createElement(tag); if (cls) { e.className = cls; } if (text !== undefined) { e.textContent = text; } return e; }

  async function getJson(url, init) {
    try {
      var res = await fetch(url, Object.assign({ credentials: "same-origin", headers: { "Accept": "application/json", "X-CSRF-Token": csrf(), "Content-Type": "application/json" } }, init || {}));
      var data = await res.json().catch(function () { return null; });
      if (!res.ok) { return { ok: false, message: data && data.error ? data.error.message : "Request failed (HTTP " + res.status + ")" }; }
      return { ok: true, data: data };
    } catch (e) { return { ok: false, message: "The server cannot be reached." }; }
  }

  function row(d) {
    var tr = el("tr");
    tr.dataset.id = d.id;
    tr.dataset.status = d.status;
    var name = el("td", null, d.title || d.name);
    if (d.title && d.title !== d.name) { name.append(el("br"), el("span", "muted", d.name)); }
    var folder = el("td"); folder.append(el("code", null, d.folder));
    var status = el("td"); status.append(el("span", "status", d.status));
    if (d.error) { status.append(el("div", "msg-error", d.error)); }
    var actions = el("td", "actions");
    if (canWrite) {
      var again = el("button", "link", "Re-index"); again.type = "button"; again.dataset.action = "POST " + base + "/" + d.id + "/retry";
      var del = el("button", "link danger", "Delete"); del.type = "button"; del.dataset.action = "DELETE " + base + "/" + d.id;
      del.dataset.confirm = "Delete " + d.name + "? Its passages leave every search at once.";
      actions.append(again, del);
    }
    tr.append(name, folder, status, el("td", null, String(d.chunkCount)), el("td", null, new Date(d.updatedAt).toISOString().slice(0, 16).replace("T", " ") + " UTC"), actions);
    return tr;
  }

  var timer = null;
  async function refresh() {
    var r = await getJson(base);
    if (!r.ok) { return; }
    var body = table.querySelector("tbody");
    body.textContent = "";
    r.data.documents.forEach(function (d) { body.append(row(d)); });
    var c = r.data.counts;
    document.getElementById("k-counts").textContent =
      (c.completed || 0) + " indexed, " + (c.running || 0) + " indexing, " + (c.queued || 0) + " queued, " + (c.failed || 0) + " failed";
    var busy = (c.running || 0) + (c.queued || 0) > 0;
    clearTimeout(timer);
    // While documents are being indexed, their status is re-read every second.
    if (busy) { timer = setTimeout(refresh, 1000); }
  }

  function upload(file) {
    var list = document.getElementById("k-uploads");
    var item = el("li", null, file.name + " — 0%");
    list.append(item);
    var folder = document.getElementById("k-folder").value || "/";
    var xhr = new XMLHttpRequest();
    xhr.open("POST", base + "?name=" + encodeURIComponent(file.name) + "&folder=" + encodeURIComponent(folder));
    xhr.setRequestHeader("X-CSRF-Token", csrf());
    xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
    xhr.upload.onprogress = function (e) { if (e.lengthComputable) { item.textContent = file.name + " — " + Math.round(100 * e.loaded / e.total) + "%"; } };
    xhr.onload = function () {
      var data = null; try { data = JSON.parse(xhr.responseText); } catch (e) { data = null; }
      if (xhr.status === 201) { item.textContent = file.name + " — uploaded, queued"; refresh(); }
      else { item.className = "msg-error"; item.textContent = file.name + " — " + (data && data.error ? data.error.message : "upload failed (HTTP " + xhr.status + ")"); }
    };
    xhr.onerror = function () { item.className = "msg-error"; item.textContent = file.name + " — the server cannot be reached"; };
    xhr.send(file);
  }

  var drop = document.getElementById("k-drop");
  var picker = document.getElementById("k-files");
  if (drop && picker) {
    picker.addEventListener("change", function () { Array.prototype.forEach.call(picker.files, upload); picker.value = ""; });
    drop.addEventListener("dragover", function (e) { e.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", function () { drop.classList.remove("over"); });
    drop.addEventListener("drop", function (e) { e.preventDefault(); drop.classList.remove("over"); Array.prototype.forEach.call(e.dataTransfer.files, upload); });
  }

  // Marks the query's words in a passage, building text nodes and <mark> elements only.
  function marked(text, words) {
    var out = document.createDocumentFragment();
    var lower = text.toLowerCase();
    var i = 0;
    while (i < text.length) {
      var best = -1, len = 0;
      words.forEach(function (w) { var at = lower.indexOf(w, i); if (at >= 0 && (best < 0 || at < best)) { best = at; len = w.length; } });
      if (best < 0) { out.append(text.slice(i)); break; }
      out.append(text.slice(i, best), el("mark", null, text.slice(best, best + len)));
      i = best + len;
    }
    return out;
  }

  var search = document.getElementById("knowledge-search");
  search.addEventListener("submit", async function (e) {
    e.preventDefault();
    var q = document.getElementById("k-query").value;
    var box = search.querySelector(".form-error");
    var r = await getJson("/api/knowledge/search?q=" + encodeURIComponent(q) + "&limit=10", { headers: { "Accept": "application/json", "X-Organization-Slug": org } });
    var results = document.getElementById("k-results");
    results.textContent = "";
    if (!r.ok) { box.textContent = r.message; box.hidden = false; return; }
    box.hidden = true;
    var words = q.toLowerCase().split(/[^\p{L}\p{N}]+/u).filter(function (w) { return w.length > 2; });
    if (!r.data.passages.length) { results.append(el("li", "muted", "No passage matches.")); }
    r.data.passages.forEach(function (p) {
      var li = el("li", "passage");
      var head = el("div", "meta", p.document + (p.chunk.section ? " — " + p.chunk.section : "") + (p.chunk.page ? ", page " + p.chunk.page : ""));
      var text = el("p");
      text.append(marked(p.chunk.text.slice(0, 600), words));
      li.append(head, text);
      results.append(li);
    });
  });

  if (table.querySelector('tr[data-status="queued"], tr[data-status="running"]')) { timer = setTimeout(refresh, 1000); }
  refresh();
})();
