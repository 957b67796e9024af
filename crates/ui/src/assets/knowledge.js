// The knowledge page: uploads with progress (drag and drop or the file picker), a document list
// kept current live (the server pushes each change of state and indexing progress over the
// WebSocket), folders to filter by and upload into, and search with the query's words marked in
// the passages. Passages are inserted as text nodes: document content never becomes markup.
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

  var state = { folder: "", progress: {} };

  // What a document being indexed is doing, in words.
  function progressText(p) {
    if (!p) { return ""; }
    if (p.stage === "embedding") { return "embedding " + p.done + " of " + p.total + " passages"; }
    return p.stage;
  }

  function row(d) {
    var tr = el("tr");
    tr.dataset.id = d.id;
    tr.dataset.status = d.status;
    var name = el("td", null, d.title || d.name);
    if (d.title && d.title !== d.name) { name.append(el("br"), el("span", "muted", d.name)); }
    var folder = el("td"); folder.append(el("code", null, d.folder));
    var status = el("td"); status.append(el("span", "status", d.status));
    var doing = d.status === "running" ? progressText(state.progress[d.id]) : "";
    if (doing) { status.append(" ", el("span", "muted progress", doing)); }
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

  // Folders seen in the list, for the filter and as upload targets.
  var shownFolders = null;
  function showFolders(docs) {
    var pick = document.getElementById("k-folder-filter");
    var known = document.getElementById("k-folder-list");
    var folders = [];
    docs.forEach(function (d) { if (folders.indexOf(d.folder) < 0) { folders.push(d.folder); } });
    folders.sort();
    // Rebuilt only when the folders change: a push arrives up to 4 times a second while documents
    // are indexed, and replacing the options each time disturbs someone in the middle of choosing one.
    var key = folders.join("\n");
    if (key === shownFolders) { return; }
    shownFolders = key;
    if (pick) {
      pick.textContent = "";
      var all = el("option", null, "All folders"); all.value = ""; pick.append(all);
      folders.forEach(function (f) { var o = el("option", null, f); o.value = f; pick.append(o); });
      if (state.folder && folders.indexOf(state.folder) < 0) { state.folder = ""; }
      pick.value = state.folder;
    }
    if (known) {
      known.textContent = "";
      folders.forEach(function (f) { var o = el("option"); o.value = f; known.append(o); });
    }
  }

  function showSearchMode(search) {
    var note = document.getElementById("k-mode");
    if (!note || !search) { return; }
    var text = search.note;
    if (search.mode === "hybrid" && search.embedded && search.embedded.done < search.embedded.total) {
      text += " (embedding existing passages: " + search.embedded.done + " of " + search.embedded.total + ")";
    }
    note.textContent = text;
    note.dataset.mode = search.mode;
  }

  var timer = null;
  var pushed = false;
  async function refresh() {
    var r = await getJson(base);
    if (!r.ok) { return; }
    state.progress = r.data.progress || {};
    showFolders(r.data.documents);
    var body = table.querySelector("tbody");
    body.textContent = "";
    var shown = r.data.documents.filter(function (d) { return !state.folder || d.folder === state.folder || d.folder.indexOf(state.folder + "/") === 0; });
    shown.forEach(function (d) { body.append(row(d)); });
    if (!shown.length) { var tr = el("tr"); var td = el("td", null); td.colSpan = 6; td.append(el("span", "muted", "No documents yet.")); tr.append(td); body.append(tr); }
    var c = r.data.counts;
    document.getElementById("k-counts").textContent =
      (c.completed || 0) + " indexed, " + (c.running || 0) + " indexing, " + (c.queued || 0) + " queued, " + (c.failed || 0) + " failed";
    showSearchMode(r.data.search);
    var busy = (c.running || 0) + (c.queued || 0) > 0;
    clearTimeout(timer);
    // Without the live connection, status is re-read every second while documents are indexed.
    if (busy && !pushed) { timer = setTimeout(reload, 1000); }
  }

  // Live updates: every change of a document's state or progress in this organisation arrives
  // as a `change` on the `knowledge` topic; reloads are coalesced to one in flight, so an older
  // list can never be drawn over a newer one (every caller goes through here).
  var loading = null, again = false;
  function reload() {
    if (loading) { again = true; return; }
    loading = refresh().finally(function () { loading = null; if (again) { again = false; reload(); } });
  }
  function connect() {
    if (!window.WebSocket) { return; }
    var delay = 500;
    function open() {
      var proto = window.location.protocol === "https:" ? "wss://" : "ws://";
      var ws = new WebSocket(proto + window.location.host + "/api/ws");
      ws.onopen = function () { delay = 500; ws.send(JSON.stringify({ type: "subscribe", org: org, topic: "knowledge" })); };
      ws.onmessage = function (ev) {
        var msg; try { msg = JSON.parse(ev.data); } catch (e) { return; }
        if (msg.topic !== "knowledge") { return; }
        // A (re)subscription: read the list again, as changes made before it were not pushed.
        if (msg.type === "snapshot") { pushed = true; clearTimeout(timer); showSearchMode(msg.data.search); reload(); return; }
        if (msg.type === "change") { reload(); }
      };
      ws.onclose = function () { pushed = false; setTimeout(open, delay); delay = Math.min(delay * 2, 10000); reload(); };
    }
    open();
  }

  function upload(file) {
    var list = document.getElementById("k-uploads");
    var item = el("li", null, file.name + " — 0%");
    list.append(item);
    var folder = document.getElementById("k-folder").value || state.folder || "/";
    var xhr = new XMLHttpRequest();
    xhr.open("POST", base + "?name=" + encodeURIComponent(file.name) + "&folder=" + encodeURIComponent(folder));
    xhr.setRequestHeader("X-CSRF-Token", csrf());
    xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
    xhr.upload.onprogress = function (e) { if (e.lengthComputable) { item.textContent = file.name + " — " + Math.round(100 * e.loaded / e.total) + "%"; } };
    xhr.onload = function () {
      var data = null; try { data = JSON.parse(xhr.responseText); } catch (e) { data = null; }
      if (xhr.status === 201) { item.textContent = file.name + " — uploaded, queued"; reload(); }
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
    var scoped = state.folder ? "&folder=" + encodeURIComponent(state.folder) : "";
    var r = await getJson("/api/knowledge/search?q=" + encodeURIComponent(q) + "&limit=10" + scoped, { headers: { "Accept": "application/json", "X-Organization-Slug": org } });
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

  var filter = document.getElementById("k-folder-filter");
  if (filter) {
    filter.addEventListener("change", function () {
      state.folder = filter.value;
      var into = document.getElementById("k-folder");
      if (into && state.folder) { into.value = state.folder; }
      reload();
    });
  }

  if (table.querySelector('tr[data-status="queued"], tr[data-status="running"]')) { timer = setTimeout(reload, 1000); }
  connect();
  reload();
})();
