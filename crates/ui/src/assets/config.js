// Agent and provider editors: turn the forms into the JSON file the API validates and stores.
// Unknown fields of a file survive a form save: the form edits a copy of the original document.
(function () {
  "use strict";

  function csrf() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.getAttribute("content") : "";
  }

  async function api(method, url, body) {
    var res;
    try {
      res = await fetch(url, {
        method: method,
        credentials: "same-origin",
        headers: { "Accept": "application/json", "Content-Type": "application/json", "X-CSRF-Token": csrf() },
        body: JSON.stringify(body)
      });
    } catch (e) { return { ok: false, message: "The server cannot be reached. Check your connection and try again." }; }
    var data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) { return { ok: false, message: data && data.error ? data.error.message : "Request failed (HTTP " + res.status + ")" }; }
    return { ok: true, data: data };
  }

  function fail(form, message) {
    var box = form.querySelector(".form-error");
    if (box) { box.textContent = message; box.hidden = false; }
  }

  function lines(value) {
    return value.split("\n").map(function (s) { return s.trim(); }).filter(Boolean);
  }

  function toast(message) {
    var t = document.getElementById("toast");
    if (!t) { return; }
    t.textContent = message;
    t.className = "show";
    setTimeout(function () { t.className = ""; }, 4000);
  }

  // The agent form: fields merged into a copy of the file.
  function agentDocument(form) {
    var doc = JSON.parse(document.getElementById("agent-original").value);
    var root = doc;
    if (form.dataset.textRoot === "i18n.en") {
      doc.i18n = doc.i18n || {};
      root = doc.i18n.en = doc.i18n.en || {};
    }
    var get = function (name) { return form.elements[name]; };
    root.displayName = get("displayName").value.trim();
    var description = get("description").value.trim();
    if (description) { root.description = description; } else { delete root.description; }
    var starters = lines(get("conversationStarters").value);
    if (starters.length) { root.conversationStarters = starters; } else { delete root.conversationStarters; }
    root.systemInstructions = get("systemInstructions").value;
    doc.supportedModels = lines(get("supportedModels").value);
    doc.visibleInChat = get("visibleInChat").checked;
    ["maxSteps", "timeoutMs", "outputReserve"].forEach(function (k) {
      var v = get(k).value;
      if (v === "") { delete doc[k]; } else { doc[k] = Number(v); }
    });
    doc.knowledgeMode = get("knowledgeMode").value;
    doc.toolNames = Array.prototype.filter.call(form.querySelectorAll('input[name="toolNames"]'), function (i) { return i.checked; })
      .map(function (i) { return i.value; });
    return doc;
  }

  document.addEventListener("submit", async function (e) {
    var form = e.target;
    var res;
    if (form.matches("[data-agent-form]")) {
      e.preventDefault();
      res = await api("PUT", form.dataset.api, agentDocument(form));
    } else if (form.matches("[data-json-form]")) {
      e.preventDefault();
      var doc;
      try { doc = JSON.parse(form.querySelector("textarea").value); } catch (err) { fail(form, "The file is not valid JSON: " + err.message); return; }
      res = await api("PUT", form.dataset.api, doc);
    } else if (form.matches("[data-provider-form]")) {
      e.preventDefault();
      var provider;
      try { provider = JSON.parse(form.querySelector("#provider-json").value); } catch (err) { fail(form, "The file is not valid JSON: " + err.message); return; }
      var key = form.elements.apiKey.value;
      res = await api("PUT", form.dataset.api, key ? { document: provider, apiKey: key } : { document: provider });
    } else if (form.matches("[data-new-config]")) {
      e.preventDefault();
      var f = form.elements;
      var slug = f.slug.value.trim();
      var body;
      if (form.dataset.newConfig === "agent") {
        body = { supportedModels: [f.model.value.trim()], visibleInChat: true, toolNames: [],
          i18n: { en: { displayName: f.displayName.value.trim(), systemInstructions: "You are a helpful assistant." } } };
      } else {
        body = { document: { displayName: f.displayName.value.trim(), baseUrl: f.baseUrl.value.trim(),
          models: [{ id: f.model.value.trim(), displayName: f.model.value.trim(), tags: ["chat"] }] }, apiKey: f.apiKey.value || "none" };
      }
      res = await api("PUT", form.dataset.apiBase + encodeURIComponent(slug), body);
      if (res.ok) { window.location.assign(form.dataset.pageBase + encodeURIComponent(slug)); return; }
    } else {
      return;
    }
    if (!res.ok) { fail(form, res.message); return; }
    var box = form.querySelector(".form-error");
    if (box) { box.textContent = ""; }
    toast("Saved");
    window.location.reload();
  });
})();
