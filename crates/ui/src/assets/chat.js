// Tale's chat page: sends questions, streams answers from the WebSocket into the page, and offers
// stop, regenerate, edit-and-resend, versions, forms, attachments, artifacts and sharing.
// Model output only ever reaches the page as text nodes or as HTML the server sanitised.
(function () {
  "use strict";

  var root = document.querySelector(".chat");
  if (!root) { return; }
  var org = root.dataset.org;
  var threadId = root.dataset.thread || null;
  var list = document.getElementById("messages");
  var form = document.getElementById("composer");
  var text = document.getElementById("composer-text");
  var sendButton = document.getElementById("composer-send");
  var stopButton = document.getElementById("composer-stop");
  var filesList = document.getElementById("composer-files");
  var attachInput = document.getElementById("composer-attach");
  var state = { messages: {}, live: root.hasAttribute("data-live-answer"), socket: null, sending: false, told: 0 };
  var attachments = [];
  var apiBase = "/api/orgs/" + encodeURIComponent(org);

  function csrf() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.getAttribute("content") : "";
  }

  function toast(message, isError) {
    var t = document.getElementById("toast");
    if (!t) { return; }
    t.textContent = message;
    t.className = isError ? "show error" : "show";
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { t.className = ""; }, 4000);
  }

  async function api(method, url, body) {
    var headers = { "Accept": "application/json", "X-CSRF-Token": csrf() };
    var init = { method: method, headers: headers, credentials: "same-origin" };
    if (body !== undefined) { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
    var res;
    try { res = await fetch(url, init); } catch (e) { return { ok: false, message: "The server cannot be reached. Check your connection and try again." }; }
    var data = null;
    var raw = await res.text();
    if (raw) { try { data = JSON.parse(raw); } catch (e) { data = null; } }
    if (!res.ok) { return { ok: false, status: res.status, message: data && data.error ? data.error.message : "Request failed (HTTP " + res.status + ")" }; }
    return { ok: true, data: data };
  }

  function showError(message) {
    var box = form && form.querySelector(".form-error");
    if (box) { box.textContent = message; box.hidden = !message; } else if (message) { toast(message, true); }
  }

  function el(tag, cls, content) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (content !== undefined) { e.textContent = content; }
    return e;
  }

  function statusLabel(s) {
    return { streaming: "writing…", stopped: "stopped", failed: "failed", interrupted: "interrupted", waiting: "waiting for your input" }[s] || "";
  }

  // ---- rendering (mirrors tale-ui's chat::message) ----

  function renderPart(m, p) {
    var li = el("li", "part " + (p.type || ""));
    if (p.type === "tool") {
      li.dataset.status = p.status || "";
      li.append("Tool ", el("code", null, p.name || ""), " — " + (p.status || ""));
    } else if (p.type === "artifact") {
      li.append("Artifact: ", el("strong", null, p.title || ""), " (" + p.kind + ", version " + p.version + ") ");
      var open = el("a", null, "Open");
      open.href = apiBase + "/threads/" + m.threadId + "/artifacts/" + encodeURIComponent(p.id);
      open.dataset.artifact = p.id;
      li.append(open);
    } else if (p.type === "file") {
      li.append("File: ");
      var a = el("a", null, p.name || "file");
      a.href = apiBase + "/files/" + encodeURIComponent(p.id);
      a.setAttribute("download", "");
      li.append(a);
    } else if (p.type === "todos") {
      li.append("To-do list");
      var ul = el("ul");
      (p.items || []).forEach(function (t) {
        var item = el("li", null, (t.text || "") + " — " + (t.status || ""));
        item.dataset.status = t.status || "";
        ul.append(item);
      });
      li.append(ul);
    } else if (p.type === "form") {
      li.append(renderForm(m, p));
    }
    return li;
  }

  // The passages an answer read (mirrors tale-ui's chat::sources): cited ones first, the rest
  // folded. Links only to this site: the server made them, the page does not rely on it.
  function citedNumbers(text) {
    var used = [];
    var re = /\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]/g;
    var match;
    while ((match = re.exec(text || "")) !== null) {
      match[1].split(",").forEach(function (n) { n = parseInt(n, 10); if (used.indexOf(n) < 0) { used.push(n); } });
    }
    return used;
  }

  function citationLabel(p) {
    var title = (p.title && p.title.trim()) || p.document || "Passage";
    var label = title;
    var section = p.section || "";
    if (section.indexOf(title + " › ") === 0) { section = section.slice(title.length + 3); }
    if (section && section !== title) { label += " › " + section; }
    if (typeof p.page === "number") { label += ", page " + p.page; }
    return label;
  }

  function renderSources(m) {
    var all = (m.parts || []).filter(function (p) { return p.type === "citation"; }).sort(function (a, b) { return a.n - b.n; });
    if (!all.length) { return null; }
    var used = citedNumbers(m.content);
    var entry = function (p) {
      var li = el("li");
      li.value = p.n;
      li.dataset.cite = p.n;
      var label = citationLabel(p);
      if (typeof p.href === "string" && p.href.charAt(0) === "/" && p.href.charAt(1) !== "/" && p.href.charAt(1) !== "\\") {
        var a = el("a", null, label);
        a.href = p.href;
        a.target = "_blank";
        a.rel = "noopener";
        li.append(a);
      } else { li.append(label); }
      if (p.document && p.document !== label) { li.append(" ", el("span", "muted", p.document)); }
      var text = p.text || "";
      if (text) { li.append(el("p", "excerpt", text.length > 240 ? text.slice(0, 240) + "…" : text)); }
      return li;
    };
    var section = el("section", "sources");
    section.setAttribute("aria-label", "Sources");
    var cited = all.filter(function (p) { return used.indexOf(p.n) >= 0; });
    var other = all.filter(function (p) { return used.indexOf(p.n) < 0; });
    if (cited.length) {
      section.append(el("h3", null, "Sources"));
      var ol = el("ol");
      cited.forEach(function (p) { ol.append(entry(p)); });
      section.append(ol);
    }
    if (other.length) {
      var details = el("details");
      details.append(el("summary", null, (cited.length ? "Also read" : "Passages read") + " (" + other.length + ")"));
      var rest = el("ol");
      other.forEach(function (p) { rest.append(entry(p)); });
      details.append(rest);
      section.append(details);
    }
    return section;
  }

  function renderForm(m, p) {
    var f = el("form", "human-input");
    f.dataset.message = m.id;
    f.dataset.call = p.id;
    var fs = el("fieldset");
    fs.append(el("legend", null, p.title || "Your input is needed"));
    if (p.description) { fs.append(el("p", "muted", p.description)); }
    var answered = p.answer !== null && p.answer !== undefined;
    (p.fields || []).forEach(function (field, i) {
      var id = "f-" + p.id + "-" + i;
      var wrap = el("div", field.type === "yes_no" ? "check" : "field");
      var input;
      if (field.type === "textarea") { input = el("textarea"); input.rows = 3; }
      else if (field.type === "select") {
        input = el("select");
        (field.options || []).forEach(function (o) { var opt = el("option", null, o); opt.value = o; input.append(opt); });
      } else if (field.type === "yes_no") { input = el("input"); input.type = "checkbox"; }
      else { input = el("input"); input.type = field.type === "number" ? "number" : "text"; }
      input.id = id;
      input.name = field.name;
      if (field.required && field.type !== "yes_no") { input.required = true; }
      if (answered) {
        input.disabled = true;
        var v = p.answer[field.name];
        if (field.type === "yes_no") { input.checked = v === true; } else if (v !== undefined && v !== null) { input.value = v; }
      }
      var label = el("label", null, field.label || field.name);
      label.htmlFor = id;
      if (field.type === "yes_no") { wrap.append(input, label); } else { wrap.append(label, input); }
      fs.append(wrap);
    });
    if (!answered) {
      var b = el("button", null, "Send answer");
      b.type = "submit";
      fs.append(b, el("p", "form-error"));
    } else {
      fs.append(el("p", "muted", "Answered."));
    }
    f.append(fs);
    return f;
  }

  function renderMessage(m) {
    var user = m.role === "user";
    var li = el("li", "msg " + m.role);
    li.id = "m-" + m.id;
    li.dataset.id = m.id;
    li.dataset.status = m.status;
    var meta = el("div", "meta");
    meta.append(el("span", "who", user ? "You" : "Assistant"));
    if (m.model) { meta.append(" · ", el("span", "model", m.model)); }
    var label = statusLabel(m.status);
    if (label) { meta.append(" · ", el("span", "status", label)); }
    li.append(meta);
    var body = el("div", "body");
    if (user) { body.append(el("p", "plain", m.content)); }
    else if (m.status === "streaming") { body.classList.add("streaming"); body.textContent = m.content; }
    else if (m.html) { body.innerHTML = m.html; } // sanitised by the server's Markdown renderer
    li.append(body);
    if (m.attachments && m.attachments.length) {
      var ul = el("ul", "attachments");
      m.attachments.forEach(function (a) {
        var link = el("a", null, a.name);
        link.href = apiBase + "/files/" + encodeURIComponent(a.id);
        link.setAttribute("download", "");
        var item = el("li");
        item.append(link);
        ul.append(item);
      });
      li.append(ul);
    }
    var sources = user ? null : renderSources(m);
    if (sources) { li.append(sources); }
    var parts = el("ul", "parts");
    (m.parts || []).forEach(function (p) { if (p.type !== "citation") { parts.append(renderPart(m, p)); } });
    if (parts.children.length) { li.append(parts); }
    if (m.error) { var err = el("p", "msg-error", m.error); err.setAttribute("role", "alert"); li.append(err); }
    var actions = el("div", "actions");
    var versions = m.versions || [m.id];
    if (versions.length > 1) {
      var index = Math.max(0, versions.indexOf(m.id));
      var span = el("span", "versions");
      if (index > 0) { var prev = el("button", "link", "‹"); prev.type = "button"; prev.dataset.select = versions[index - 1]; prev.setAttribute("aria-label", "Previous version"); span.append(prev); }
      span.append(" " + (index + 1) + " / " + versions.length + " ");
      if (index + 1 < versions.length) { var next = el("button", "link", "›"); next.type = "button"; next.dataset.select = versions[index + 1]; next.setAttribute("aria-label", "Next version"); span.append(next); }
      actions.append(span);
    }
    if (user) {
      var edit = el("button", "link", "Edit"); edit.type = "button"; edit.dataset.edit = m.id; actions.append(edit);
    } else if (m.status !== "streaming") {
      var regen = el("button", "link", "Regenerate"); regen.type = "button"; regen.dataset.regenerate = m.id; actions.append(regen);
      if (m.runId) { var log = el("a", null, "Run log"); log.href = "/dashboard/" + encodeURIComponent(org) + "/runs/" + encodeURIComponent(m.runId); actions.append(" ", log); }
    }
    li.append(actions);
    return li;
  }

  function setLive(live) {
    state.live = live;
    if (stopButton) { stopButton.hidden = !live; }
    if (sendButton) { sendButton.disabled = live || state.sending; }
  }

  // Starts a turn (send, regenerate, edit, form answer). The page goes live before the request:
  // the WebSocket can bring the whole answer, final event included, before the response arrives
  // (a fast model, an upstream that fails at once), and turning Stop on after that would leave it
  // on for good. From here on only the thread's events change it; a refused request undoes it
  // unless an event has told the truth meanwhile (another tab's answer may have started).
  async function startTurn(request) {
    var was = state.live;
    var told = state.told;
    if (threadId) { setLive(true); }
    var res = await request();
    if (!res.ok && state.told === told) { setLive(was); }
    return res;
  }

  // The server's word on whether an answer is being written (a snapshot, a final message).
  function liveFromServer(live) {
    state.told += 1;
    setLive(live);
  }

  function renderAll(view) {
    state.messages = {};
    list.textContent = "";
    view.messages.forEach(function (m) {
      state.messages[m.id] = { seq: m.seq || 0, data: m };
      list.append(renderMessage(m));
    });
    liveFromServer(view.live);
    var title = document.getElementById("chat-title");
    if (title && view.thread) { title.textContent = view.thread.title; }
  }

  function replaceMessage(m) {
    state.messages[m.id] = { seq: m.seq || 0, data: m };
    var old = document.getElementById("m-" + m.id);
    var fresh = renderMessage(m);
    if (old) { old.replaceWith(fresh); } else { list.append(fresh); }
  }

  // ---- live updates ----

  function resync() {
    if (state.socket && state.socket.readyState === 1) {
      state.socket.send(JSON.stringify({ type: "subscribe", org: org, topic: "thread", id: threadId }));
    }
  }

  // A new turn hangs under a message this tab shows (or starts the thread): what followed that
  // message belonged to another branch, so it goes, and the turn takes its place.
  function applyTurn(t) {
    var first = t.question || t.answer;
    var nodes = Array.prototype.filter.call(list.children, function (n) { return n.dataset && n.dataset.id; });
    var at = first.parentId ? nodes.findIndex(function (n) { return n.dataset.id === first.parentId; }) : -1;
    if (first.parentId && at < 0) { resync(); return; }
    nodes.slice(at + 1).forEach(function (n) { delete state.messages[n.dataset.id]; n.remove(); });
    if (t.question) { replaceMessage(t.question); }
    replaceMessage(t.answer);
    liveFromServer(true);
  }

  function onEvent(msg) {
    if (msg.type === "snapshot" && msg.topic === "thread") { renderAll(msg.data); return; }
    if (msg.type === "turn") { applyTurn(msg); return; }
    if (msg.type === "delta" || msg.type === "part") {
      var known = state.messages[msg.message];
      if (!known) { resync(); return; }
      if (msg.seq <= known.seq) { return; }
      if (msg.seq !== known.seq + 1) { resync(); return; }
      known.seq = msg.seq;
      var node = document.getElementById("m-" + msg.message);
      if (msg.type === "delta") {
        known.data.content += msg.text;
        var body = node && node.querySelector(".body");
        if (body) { body.append(document.createTextNode(msg.text)); }
      } else {
        var parts = known.data.parts || (known.data.parts = []);
        var i = parts.findIndex(function (p) { return p.id === msg.part.id && p.type === msg.part.type; });
        if (i >= 0) { parts[i] = msg.part; } else { parts.push(msg.part); }
        replaceMessage(Object.assign({}, known.data, { seq: known.seq }));
      }
      return;
    }
    if (msg.type === "message") { replaceMessage(msg.message); if (msg.final) { liveFromServer(false); } return; }
    if (msg.type === "renamed") {
      var title = document.getElementById("chat-title");
      if (title) { title.textContent = msg.title; }
      var link = document.querySelector('#thread-list a[aria-current="page"]');
      if (link) { link.textContent = msg.title; }
      return;
    }
    if (msg.type === "deleted") { window.location.assign("/dashboard/" + encodeURIComponent(org) + "/chat"); return; }
    if (msg.type === "error" && msg.error) {
      if (msg.error.status === 401) { window.location.assign("/sign-in"); return; }
      toast(msg.error.message, true);
    }
  }

  function connect() {
    if (!threadId || !window.WebSocket) { return; }
    var status = document.getElementById("live-status");
    var delay = 500;
    function open() {
      var proto = window.location.protocol === "https:" ? "wss://" : "ws://";
      var ws = new WebSocket(proto + window.location.host + "/api/ws");
      state.socket = ws;
      ws.onopen = function () {
        delay = 500;
        if (status) { status.textContent = ""; status.dataset.state = "live"; }
        resync();
      };
      ws.onmessage = function (ev) {
        var msg;
        try { msg = JSON.parse(ev.data); } catch (e) { return; }
        onEvent(msg);
      };
      ws.onclose = function () {
        if (status) { status.textContent = "Reconnecting…"; status.dataset.state = "offline"; }
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 5000);
      };
    }
    open();
  }

  // ---- composer and attachments ----

  function renderAttachments() {
    if (!filesList) { return; }
    filesList.textContent = "";
    attachments.forEach(function (a, i) {
      var li = el("li", a.error ? "failed" : "");
      li.append(a.name + (a.error ? " — " + a.error : a.id ? "" : " — " + a.progress + "%"));
      var remove = el("button", "link", "Remove");
      remove.type = "button";
      remove.setAttribute("aria-label", "Remove " + a.name);
      remove.addEventListener("click", function () { attachments.splice(i, 1); renderAttachments(); });
      li.append(" ", remove);
      filesList.append(li);
    });
  }

  function upload(file) {
    var entry = { name: file.name, progress: 0, id: null, error: null };
    attachments.push(entry);
    renderAttachments();
    return new Promise(function (resolve) {
      var xhr = new XMLHttpRequest();
      xhr.open("POST", attachInput.dataset.upload + "?name=" + encodeURIComponent(file.name));
      xhr.setRequestHeader("X-CSRF-Token", csrf());
      xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
      xhr.upload.onprogress = function (e) { if (e.lengthComputable) { entry.progress = Math.round(100 * e.loaded / e.total); renderAttachments(); } };
      xhr.onload = function () {
        var data = null;
        try { data = JSON.parse(xhr.responseText); } catch (e) { data = null; }
        if (xhr.status >= 200 && xhr.status < 300 && data && data.file) { entry.id = data.file.id; }
        else { entry.error = data && data.error ? data.error.message : "upload failed (HTTP " + xhr.status + ")"; }
        renderAttachments();
        resolve();
      };
      xhr.onerror = function () { entry.error = "the server cannot be reached"; renderAttachments(); resolve(); };
      xhr.send(file);
    });
  }

  async function send(content) {
    // A second Enter (or click) while the first request is out would send the question twice,
    // and on the new-chat page start a second thread.
    if (state.sending) { return; }
    if (attachments.some(function (a) { return !a.id && !a.error; })) { showError("Wait for the uploads to finish."); return; }
    var ids = attachments.filter(function (a) { return a.id; }).map(function (a) { return a.id; });
    if (!content.trim() && !ids.length) { return; }
    showError("");
    state.sending = true;
    if (sendButton) { sendButton.disabled = true; }
    var res = await startTurn(function () {
      if (threadId) { return api("POST", apiBase + "/threads/" + threadId + "/messages", { content: content, attachments: ids }); }
      var picker = document.getElementById("agent-picker");
      return api("POST", apiBase + "/threads", { agent: picker ? picker.value : "", message: content, attachments: ids });
    });
    if (!res.ok) { state.sending = false; setLive(state.live); showError(res.message); return; }
    attachments = [];
    renderAttachments();
    text.value = "";
    if (!threadId) {
      // Still "sending" until the thread's page replaces this one.
      window.location.assign("/dashboard/" + encodeURIComponent(org) + "/chat/" + encodeURIComponent(res.data.thread.id));
      return;
    }
    state.sending = false;
    setLive(state.live);
    // The WebSocket brings the same turn; showing it now keeps the page right without one.
    if (res.data.question && !state.messages[res.data.question.id]) { replaceMessage(res.data.question); }
    if (!state.messages[res.data.answer.id]) { replaceMessage(res.data.answer); }
  }

  if (form) {
    form.addEventListener("submit", function (e) { e.preventDefault(); send(text.value); });
    text.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); if (!state.live && !state.sending) { send(text.value); } }
    });
  }
  if (attachInput) {
    attachInput.addEventListener("change", function () {
      Array.prototype.forEach.call(attachInput.files, upload);
      attachInput.value = "";
    });
  }
  if (stopButton) {
    stopButton.addEventListener("click", async function () {
      stopButton.disabled = true;
      var res = await api("POST", apiBase + "/threads/" + threadId + "/stop");
      stopButton.disabled = false;
      if (!res.ok) { toast(res.message, true); }
    });
  }

  var picker = document.getElementById("agent-picker");
  if (picker) {
    picker.addEventListener("change", function () {
      document.querySelectorAll(".agent-intro").forEach(function (d) { d.hidden = d.dataset.agent !== picker.value; });
    });
  }

  // ---- actions on messages and the thread ----

  function startEdit(id) {
    var node = document.getElementById("m-" + id);
    var known = state.messages[id];
    if (!node || !known || node.querySelector(".edit-form")) { return; }
    var f = el("form", "edit-form");
    var area = el("textarea");
    area.value = known.data.content;
    area.rows = 4;
    area.setAttribute("aria-label", "Edited message");
    var save = el("button", null, "Send edited message"); save.type = "submit";
    var cancel = el("button", "link", "Cancel"); cancel.type = "button";
    cancel.addEventListener("click", function () { f.remove(); });
    f.append(area, save, cancel, el("p", "form-error"));
    f.addEventListener("submit", async function (e) {
      e.preventDefault();
      var res = await startTurn(function () { return api("POST", apiBase + "/threads/" + threadId + "/messages/" + id + "/edit", { content: area.value }); });
      if (!res.ok) { f.querySelector(".form-error").textContent = res.message; return; }
      f.remove();
    });
    node.append(f);
    area.focus();
  }

  async function openArtifact(id) {
    var res = await api("GET", apiBase + "/threads/" + threadId + "/artifacts/" + encodeURIComponent(id));
    if (!res.ok) { toast(res.message, true); return; }
    var a = res.data.artifact;
    var dialog = document.getElementById("artifact-dialog");
    var body = document.getElementById("artifact-body");
    document.getElementById("artifact-title").textContent = a.title + " (version " + a.version + ")";
    body.textContent = "";
    if (a.kind === "html" || a.kind === "svg") {
      var frame = el("iframe", "artifact-frame");
      frame.setAttribute("sandbox", "allow-scripts");
      frame.title = a.title;
      frame.src = apiBase + "/threads/" + threadId + "/artifacts/" + encodeURIComponent(id) + "/preview?version=" + a.version;
      body.append(frame);
    } else if (res.data.html) {
      var div = el("div", "artifact-rendered");
      div.innerHTML = res.data.html; // sanitised by the server's Markdown renderer
      body.append(div);
    } else {
      var pre = el("pre", "code");
      pre.append(el("code", null, a.content));
      body.append(pre);
    }
    if (dialog.showModal) { dialog.showModal(); } else { dialog.setAttribute("open", ""); }
  }

  document.addEventListener("click", async function (e) {
    var t = e.target;
    var b;
    if ((b = t.closest("[data-starter]"))) { text.value = b.dataset.starter; send(text.value); return; }
    if ((b = t.closest("[data-select]"))) {
      var r = await api("POST", apiBase + "/threads/" + threadId + "/messages/" + b.dataset.select + "/select");
      if (!r.ok) { toast(r.message, true); } else { renderAll(r.data); }
      return;
    }
    if ((b = t.closest("[data-regenerate]"))) {
      var rg = await startTurn(function () { return api("POST", apiBase + "/threads/" + threadId + "/messages/" + b.dataset.regenerate + "/regenerate"); });
      if (!rg.ok) { toast(rg.message, true); }
      return;
    }
    if ((b = t.closest("[data-edit]"))) { startEdit(b.dataset.edit); return; }
    if ((b = t.closest("a[data-artifact]"))) { e.preventDefault(); openArtifact(b.dataset.artifact); return; }
    if ((b = t.closest("[data-close-dialog]"))) { var d = document.getElementById("artifact-dialog"); if (d.close) { d.close(); } else { d.removeAttribute("open"); } return; }
    if ((b = t.closest("[data-rename]"))) {
      var title = window.prompt("New title", document.getElementById("chat-title").textContent);
      if (title === null) { return; }
      var rn = await api("PATCH", apiBase + "/threads/" + threadId, { title: title });
      if (!rn.ok) { toast(rn.message, true); }
      return;
    }
    if ((b = t.closest("[data-share]"))) {
      var sh = await api("POST", apiBase + "/threads/" + threadId + "/share");
      if (!sh.ok) { toast(sh.message, true); return; }
      document.getElementById("share-link").value = sh.data.url;
      document.getElementById("share-result").hidden = false;
      return;
    }
    if ((b = t.closest("[data-unshare]"))) {
      var us = await api("DELETE", apiBase + "/threads/" + threadId + "/share");
      if (!us.ok) { toast(us.message, true); } else { toast("The share link no longer works.", false); b.remove(); }
      return;
    }
    if ((b = t.closest("[data-delete-thread]"))) {
      if (!window.confirm("Delete this chat? This cannot be undone.")) { return; }
      var del = await api("DELETE", apiBase + "/threads/" + threadId);
      if (!del.ok) { toast(del.message, true); return; }
      window.location.assign("/dashboard/" + encodeURIComponent(org) + "/chat");
    }
  });

  document.addEventListener("submit", async function (e) {
    var f = e.target.closest("form.human-input");
    if (!f) { return; }
    e.preventDefault();
    var values = {};
    Array.prototype.forEach.call(f.elements, function (input) {
      if (!input.name) { return; }
      values[input.name] = input.type === "checkbox" ? input.checked : input.type === "number" ? (input.value === "" ? null : Number(input.value)) : input.value;
    });
    var res = await startTurn(function () { return api("POST", apiBase + "/threads/" + threadId + "/messages/" + f.dataset.message + "/input", { callId: f.dataset.call, values: values }); });
    if (!res.ok) { var box = f.querySelector(".form-error"); if (box) { box.textContent = res.message; } }
  });

  // The server rendered the page; record what it showed so live events apply on top.
  if (list) {
    list.querySelectorAll("li.msg").forEach(function (li) {
      // A question's text is on the page as written: Edit starts from it even before (or without)
      // the WebSocket's snapshot.
      var plain = li.querySelector(".body .plain");
      state.messages[li.dataset.id] = { seq: 0, data: { id: li.dataset.id, content: plain ? plain.textContent : "", parts: [] } };
    });
  }
  setLive(state.live);
  connect();
})();
