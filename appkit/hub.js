// appkit hub client: a websocket that comes back. Plain JS, no build step.
//
//   const hub = appkit.connect({
//     url: "/websocket",            // the hub's path
//     since: 42,                    // the last event id the page already reflects
//     onEvent(ev) {},               // {id, kind, data, at}, in id order, each once
//     onReset() {},                 // missed events are gone: reload state (fetch), no page reload
//     onHello(h) {},                // {server, last}: which instance answered
//     onState(state, info) {},      // "connecting" | "open" | "closed" | "stopped"
//   });
//   hub.lastId(); hub.close();
//
// On close it reconnects and resumes from the last event id it delivered:
// at once (with a little jitter) on 1012 "service restart", which tandem
// sends when this server lost the active role, soon on 1001 "going away",
// and with exponential backoff (250ms doubling to 5s) on 1006 and anything
// else. It stops on 4401 (not logged in) and 1008 (policy violation).
(function (global) {
  "use strict";
  const STOP = new Set([4401, 1008]);

  function connect(opts) {
    const o = Object.assign({ url: "/websocket", since: null }, opts || {});
    let last = typeof o.since === "number" ? o.since : null;
    let ws = null, timer = null, failures = 0, stopped = false;
    const call = (fn, ...args) => { try { if (fn) fn(...args); } catch (e) { console.error(e); } };

    function wsURL() {
      const u = new URL(o.url, global.location.href);
      u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
      if (last !== null) u.searchParams.set("since", String(last));
      return u.toString();
    }

    function delay(code) {
      const jitter = (ms) => ms * (0.8 + Math.random() * 0.4);
      if (code === 1012) return Math.random() * 100;
      if (code === 1001 || code === 1013) return jitter(200);
      return jitter(Math.min(5000, 250 * Math.pow(2, Math.max(0, failures - 1))));
    }

    function open() {
      if (stopped) return;
      call(o.onState, "connecting", { since: last });
      ws = new WebSocket(wsURL());
      let greeted = false;
      ws.onmessage = (m) => {
        let ev;
        try { ev = JSON.parse(m.data); } catch (e) { return; }
        if (ev.kind === "appkit.hello") {
          greeted = true;
          failures = 0;
          if (last === null) last = ev.data.last;
          call(o.onHello, ev.data);
          call(o.onState, "open", ev.data);
          return;
        }
        if (ev.kind === "appkit.reset") {
          call(o.onReset);
          return;
        }
        if (last !== null && ev.id <= last) return; // already delivered
        last = ev.id;
        call(o.onEvent, ev);
      };
      ws.onclose = (e) => {
        ws = null;
        if (stopped) return;
        if (STOP.has(e.code)) {
          stopped = true;
          call(o.onState, "stopped", { code: e.code, reason: e.reason });
          return;
        }
        if (!greeted) failures++;
        else failures = e.code === 1012 || e.code === 1001 ? 0 : 1;
        const ms = delay(e.code);
        call(o.onState, "closed", { code: e.code, reason: e.reason, retryIn: Math.round(ms) });
        timer = setTimeout(open, ms);
      };
    }

    open();
    return {
      lastId: () => last,
      close() {
        stopped = true;
        clearTimeout(timer);
        if (ws) ws.close(1000, "bye");
      },
    };
  }

  global.appkit = Object.assign(global.appkit || {}, { connect });
})(window);
