// Tale's page script: JSON forms and buttons against /api, and live regions fed by the WebSocket.
// Plain ES2017, no build step. Every server error is shown to the user in words.
(function () {
  "use strict";

  function csrf() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.getAttribute("content") : "";
  }

  function toast(text, isError) {
    var t = document.getElementById("toast");
    if (!t) { if (isError) { window.alert(text); } return; }
    t.textContent = text;
    t.className = isError ? "show error" : "show";
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { t.className = ""; }, 4000);
  }

  async function api(method, url, body) {
    var headers = { "Accept": "application/json" };
    var token = csrf();
    if (token) { headers["X-CSRF-Token"] = token; }
    var init = { method: method, headers: headers, credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    var res;
    try {
      res = await fetch(url, init);
    } catch (e) {
      return { ok: false, status: 0, message: "The server cannot be reached. Check your connection and try again." };
    }
    var data = null;
    var text = await res.text();
    if (text) { try { data = JSON.parse(text); } catch (e) { data = null; } }
    if (!res.ok) {
      var message = data && data.error ? data.error.message : "Request failed (HTTP " + res.status + ")";
      return { ok: false, status: res.status, message: message, data: data };
    }
    return { ok: true, status: res.status, data: data };
  }

  // Builds the JSON body from a form: dotted names nest, numbers and checkboxes keep their type.
  function formBody(form) {
    var body = {};
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || el.disabled) { return; }
      var value;
      if (el.type === "checkbox") { value = el.checked; }
      else if (el.type === "number") { value = el.value === "" ? null : Number(el.value); }
      else if (el.dataset.type === "int-list") {
        value = el.value.split(",").map(function (s) { return s.trim(); }).filter(Boolean).map(Number);
      } else { value = el.value; }
      var path = el.name.split(".");
      var target = body;
      for (var i = 0; i < path.length - 1; i++) {
        target[path[i]] = target[path[i]] || {};
        target = target[path[i]];
      }
      target[path[path.length - 1]] = value;
    });
    return body;
  }

  function showError(form, message) {
    var box = form.querySelector(".form-error");
    if (box) { box.textContent = message; box.hidden = false; } else { toast(message, true); }
  }

  function fillResult(selector, data) {
    var box = document.querySelector(selector);
    if (!box || !data) { return; }
    box.querySelectorAll("[data-field]").forEach(function (el) {
      var v = data[el.dataset.field];
      if ("value" in el) { el.value = v == null ? "" : v; } else { el.textContent = v == null ? "" : v; }
    });
    box.hidden = false;
  }

  async function onSubmit(event) {
    var form = event.target.closest("form[data-api]");
    if (!form) { return; }
    event.preventDefault();
    var box = form.querySelector(".form-error");
    if (box) { box.hidden = true; box.textContent = ""; }
    var button = form.querySelector('button[type="submit"]');
    if (button) { button.disabled = true; }
    var res = await api(form.dataset.method || "POST", form.dataset.api, formBody(form));
    if (button) { button.disabled = false; }
    if (!res.ok) { showError(form, res.message); return; }
    if (form.dataset.next !== undefined || (res.data && res.data.redirect && form.dataset.result === undefined && form.dataset.success === undefined)) {
      var next = form.dataset.next;
      // Only same-site paths: "//host" and "/\host" would leave the site.
      var local = next && next.charAt(0) === "/" && next.charAt(1) !== "/" && !/[\\\u0000-\u001f\u007f]/.test(next);
      var target = local ? next : (res.data && res.data.redirect) || "/";
      if (res.data && res.data.mustChangePassword) { target = "/account"; }
      window.location.assign(target);
      return;
    }
    if (form.dataset.result) { fillResult(form.dataset.result, res.data); }
    if (form.dataset.success) { toast(form.dataset.success, false); }
    if (form.dataset.reset !== undefined) {
      Array.prototype.forEach.call(form.elements, function (el) {
        if (el.tagName === "INPUT" && el.type !== "hidden" && el.type !== "checkbox") { el.value = ""; }
      });
    }
    refreshLive();
  }

  async function onClick(event) {
    var copy = event.target.closest("[data-copy]");
    if (copy) {
      var input = document.querySelector(copy.dataset.copy);
      if (input) {
        input.select();
        try { await navigator.clipboard.writeText(input.value); toast("Copied", false); }
        catch (e) { toast("Press Ctrl+C to copy", false); }
      }
      return;
    }
    var verify = event.target.closest("[data-verify]");
    if (verify) {
      var out = document.getElementById("verify-result");
      out.textContent = "Checking…";
      var r = await api("POST", verify.dataset.verify);
      if (!r.ok) { out.textContent = r.message; return; }
      out.textContent = r.data.intact
        ? "Intact: all " + r.data.rows + " entries verify."
        : "Broken at entry #" + r.data.broken.seq + ": " + r.data.broken.reason;
      out.className = r.data.intact ? "ok" : "bad";
      return;
    }
    var button = event.target.closest("[data-action]");
    if (!button || button.tagName !== "BUTTON") { return; }
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) { return; }
    var parts = button.dataset.action.split(" ");
    var body = button.dataset.body ? JSON.parse(button.dataset.body) : undefined;
    button.disabled = true;
    var res = await api(parts[0], parts[1], body);
    button.disabled = false;
    if (!res.ok) { toast(res.message, true); return; }
    if (button.dataset.redirect) { window.location.assign(button.dataset.redirect); return; }
    refreshLive();
  }

  async function onChange(event) {
    var el = event.target;
    if (el.matches("select[data-navigate]")) { window.location.assign(el.value); return; }
    if (el.matches("select[data-role-url]")) {
      var res = await api("PATCH", el.dataset.roleUrl, { role: el.value });
      if (!res.ok) { toast(res.message, true); }
      else { toast("Role changed", false); }
      refreshLive();
    }
  }

  // Re-renders every [data-live] region from a fresh copy of this page.
  var refreshing = null;
  function refreshLive() {
    if (!document.querySelector("[data-live]")) { return Promise.resolve(); }
    if (refreshing) { refreshing.again = true; return refreshing.promise; }
    refreshing = { again: false };
    refreshing.promise = (async function () {
      do {
        refreshing.again = false;
        var res;
        try { res = await fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } }); }
        catch (e) { break; }
        if (res.redirected && res.url.indexOf("/sign-in") !== -1) { window.location.assign(res.url); return; }
        if (!res.ok) { break; }
        var doc = new DOMParser().parseFromString(await res.text(), "text/html");
        document.querySelectorAll("[data-live]").forEach(function (region) {
          var fresh = region.id ? doc.getElementById(region.id) : null;
          if (fresh) { region.replaceWith(document.importNode(fresh, true)); }
        });
      } while (refreshing.again);
      refreshing = null;
    })();
    return refreshing.promise;
  }

  // One WebSocket per tab; subscribes to this page's topics and resubscribes after reconnecting.
  function connectLive() {
    var org = document.body.dataset.org;
    var topics = (document.body.dataset.topics || "").split(" ").filter(Boolean);
    if (!org || !topics.length || !window.WebSocket) { return; }
    var status = document.getElementById("live-status");
    var delay = 500;
    var firstConnect = true;
    function open() {
      var proto = window.location.protocol === "https:" ? "wss://" : "ws://";
      var ws = new WebSocket(proto + window.location.host + "/api/ws");
      var reconnected = !firstConnect;
      ws.onopen = function () {
        delay = 500;
        if (status) { status.textContent = ""; status.dataset.state = "live"; }
        topics.forEach(function (t) { ws.send(JSON.stringify({ type: "subscribe", org: org, topic: t })); });
      };
      ws.onmessage = function (ev) {
        var msg;
        try { msg = JSON.parse(ev.data); } catch (e) { return; }
        if (msg.type === "change" || (msg.type === "snapshot" && reconnected)) { refreshLive(); }
        if (msg.type === "error" && msg.error && msg.error.status === 401) { window.location.assign("/sign-in"); }
      };
      ws.onclose = function () {
        firstConnect = false;
        if (status) { status.textContent = "Reconnecting…"; status.dataset.state = "offline"; }
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 5000);
      };
    }
    open();
  }

  document.addEventListener("submit", onSubmit);
  document.addEventListener("click", onClick);
  document.addEventListener("change", onChange);
  document.addEventListener("DOMContentLoaded", connectLive);
})();
