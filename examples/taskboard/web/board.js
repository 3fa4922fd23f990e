// The task board page: plain JS, no build step. The board comes from
// GET /api/board with the event id it reflects; the appkit hub client then
// streams every change from that id on, and comes back by itself when the
// gateway switches instances. Writes carry an Idempotency-Key and are
// retried with the same key, so a switch mid-write neither fails nor
// duplicates it.
"use strict";
(() => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const tasks = new Map();
  const order = ["todo", "doing", "done"];
  const $ = (s) => document.querySelector(s);
  let hub = null;

  function key() {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b); // randomUUID needs a secure context; this does not
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

  function message(text) {
    const m = $("#message");
    m.textContent = text || "";
    m.hidden = !text;
  }

  function apply(t) {
    const cur = tasks.get(t.id);
    if (cur && cur.version > t.version) return false;
    if (t.deleted) tasks.delete(t.id);
    else tasks.set(t.id, t);
    return true;
  }

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k.startsWith("data-")) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const k of kids) e.append(k);
    return e;
  }

  function render() {
    for (const status of order) {
      const sec = document.querySelector(`section[data-status="${status}"]`);
      const list = [...tasks.values()].filter((t) => t.status === status).sort((a, b) => a.id - b.id);
      const ul = sec.querySelector("ul");
      ul.replaceChildren(...list.map(card));
      sec.querySelector(".count").textContent = list.length ? `(${list.length})` : "";
    }
  }

  function card(t) {
    const i = order.indexOf(t.status);
    const li = el("li", { "data-id": String(t.id), "data-version": String(t.version), class: t.overdue ? "overdue" : "" },
      el("span", { class: "title", textContent: t.title }),
      el("span", { class: "by", textContent: t.createdBy }));
    if (t.dueAt) {
      const d = new Date(t.dueAt);
      li.append(el("span", { class: "due", textContent: (t.overdue ? "overdue " : "due ") + d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) }));
    }
    if (i > 0) li.append(el("button", { class: "small secondary", title: "move back", textContent: "←", "data-action": "back", onclick: () => move(t, order[i - 1]) }));
    if (i < 2) li.append(el("button", { class: "small secondary", title: "move on", textContent: "→", "data-action": "forward", onclick: () => move(t, order[i + 1]) }));
    if (t.status !== "done") li.append(el("button", { class: "small", title: "complete", textContent: "✓", "data-action": "complete", onclick: () => send("POST", `/api/tasks/${t.id}/complete`) }));
    li.append(el("button", { class: "small secondary", title: "delete", textContent: "✕", "data-action": "delete", onclick: () => send("DELETE", `/api/tasks/${t.id}`) }));
    return li;
  }

  function move(t, status) { return send("POST", `/api/tasks/${t.id}/move`, { status }); }

  // send performs a write, retrying with the same Idempotency-Key while
  // the gateway switches (network error, 502, 503, 504, or 409 from a
  // fenced old master): the server applies the key once.
  async function send(method, url, body) {
    const headers = { "X-CSRF-Token": csrf, "Idempotency-Key": key() };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let wait = 200;
    for (let attempt = 1; ; attempt++) {
      let resp = null;
      try {
        resp = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin" });
      } catch (e) { /* network error: retry */ }
      if (resp && resp.ok) {
        message("");
        const t = await resp.json();
        if (t && t.id && apply(t)) render();
        return t;
      }
      if (resp && resp.status === 401) { location.href = "/login"; return null; }
      const retriable = !resp || [409, 502, 503, 504].includes(resp.status);
      if (!retriable || attempt >= 8) {
        let text = resp ? `${resp.status}` : "network error";
        try { if (resp) text = (await resp.json()).error || text; } catch (e) { /* not JSON */ }
        message(`Not saved: ${text}`);
        return null;
      }
      message("Reconnecting…");
      await new Promise((r) => setTimeout(r, wait));
      wait = Math.min(wait * 2, 2000);
    }
  }

  async function load() {
    for (let wait = 200; ; wait = Math.min(wait * 2, 2000)) {
      try {
        const resp = await fetch("/api/board", { credentials: "same-origin" });
        if (resp.status === 401) { location.href = "/login"; return null; }
        if (resp.ok) {
          const b = await resp.json();
          tasks.clear();
          for (const t of b.tasks) tasks.set(t.id, t);
          render();
          return b;
        }
      } catch (e) { /* retry */ }
      await new Promise((r) => setTimeout(r, wait));
    }
  }

  function setConn(state, info) {
    const c = $("#conn");
    c.dataset.state = state;
    c.textContent = state === "closed" ? `reconnecting (${info.code})` : state === "stopped" ? "logged out" : state;
    if (state === "stopped") location.href = "/login";
  }

  async function start() {
    const b = await load();
    if (!b) return;
    hub = appkit.connect({
      url: "/websocket",
      since: b.eventId,
      onHello: (h) => { $("#server").textContent = h.server; },
      onState: setConn,
      onEvent: (ev) => { if (ev.kind === "task" && apply(ev.data)) render(); },
      onReset: () => { load(); },
    });
    window.taskboard = { hub, tasks, send };
  }

  $("#new-task").addEventListener("submit", async (e) => {
    e.preventDefault();
    const title = $("#title").value.trim();
    if (!title) return;
    const body = { title };
    const due = $("#due").value;
    if (due !== "") body.dueInMinutes = Number(due);
    $("#title").value = "";
    const t = await send("POST", "/api/tasks", body);
    if (!t) $("#title").value = title;
  });

  start();
})();
