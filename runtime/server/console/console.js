// weft console: plain JavaScript, no framework, no build step. Everything it shows comes from
// the JSON API under /api/v1/. Rule: data is only ever put on the page as text (textContent,
// attribute values, SVG text nodes), never as markup, so a workflow id such as
// `<img src=x onerror=alert(1)>` shows as those characters.
"use strict";

const POLL_MS = 1500;
const GROUP_OVER = 100; // timeline rows past which operations are grouped by name

// ---------- small DOM helpers ----------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// Replaces an element's children; like `h`, skips null and false (replaceChildren would
// write them as the text "null").
function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

const main = () => document.getElementById("main");

// ---------- formatting ----------

function pad(n, w = 2) { return String(n).padStart(w, "0"); }
function fmtTime(ms) {
  if (!ms) return "—";
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}
function fmtDuration(ms) {
  if (ms === null || ms === undefined || ms < 0) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  if (ms < 3600000) return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
  return `${Math.floor(ms / 3600000)} h ${Math.round((ms % 3600000) / 60000)} min`;
}
function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}
function pretty(v) { return JSON.stringify(v, null, 2); }

// A history value as a person reads it: a `{"$bytes": ...}` payload (bytes that are not
// compact JSON) whose bytes are JSON laid out otherwise is shown as that JSON.
function readable(v) {
  if (Array.isArray(v)) return v.map(readable);
  if (v === null || typeof v !== "object") return v;
  const keys = Object.keys(v);
  if (keys.length === 1 && keys[0] === "$bytes" && typeof v.$bytes === "string") {
    try {
      const bin = atob(v.$bytes);
      const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
      return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
    } catch { return v; }
  }
  return Object.fromEntries(keys.map((k) => [k, readable(v[k])]));
}
const STATUS_LABEL = {
  running: "running", completed: "completed", failed: "failed",
  continued_as_new: "continued as new", terminated: "terminated", cancelled: "cancelled",
};
const STATUSES = Object.keys(STATUS_LABEL);
function badge(status) {
  return h("span", { class: `badge ${status}`, dataset: { status } }, STATUS_LABEL[status] || status);
}
function runLink(workflowId, runId, text) {
  const q = runId ? `?run_id=${encodeURIComponent(runId)}` : "";
  return h("a", { href: `#/run/${encodeURIComponent(workflowId)}${q}` }, text ?? workflowId);
}

// ---------- the API ----------

class ApiError extends Error {
  constructor(code, message) { super(message); this.code = code; }
}

async function api(path, options = {}) {
  const init = { method: options.method || "GET", headers: {} };
  if (options.json !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(options.json);
  } else if (options.body !== undefined) {
    init.body = options.body;
    init.headers["content-type"] = "application/wasm";
  }
  let response;
  try {
    response = await fetch(`/api/v1/${path}`, init);
  } catch (e) {
    throw new ApiError("UNAVAILABLE", `cannot reach the server: ${e.message}`);
  }
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!response.ok) {
    const err = body && body.error;
    const error = new ApiError(err ? err.code : String(response.status), err ? err.message : text);
    // The server runs with tokens and this browser has none (or a revoked one): sign in.
    if (response.status === 401 && path !== "login") showLogin(error);
    throw error;
  }
  return body;
}

// ---------- sign-in (servers started with --auth) ----------

function showLogin(error) {
  clearTimeout(pageTimer);
  pageToken++;
  if (document.getElementById("login")) return;
  const input = h("input", { id: "login-token", name: "token", type: "password", autocomplete: "off", required: true, size: 40 });
  const problem = h("p", { id: "login-error", class: "error", role: "alert" }, error.code === "UNAUTHENTICATED" ? "" : error.message);
  const form = h("form", { id: "login", class: "login", onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      const who = await api("login", { method: "POST", json: { token: input.value } });
      setLive(`signed in as ${who.name} (${who.role})`);
      route();
    } catch (e) {
      fill(problem, errorBox(e));
    }
  } },
    h("h1", {}, "Sign in"),
    h("p", {}, "This server needs a token (`weft token create`); it is kept in a cookie this page's script cannot read."),
    h("label", {}, "Token ", input),
    h("button", { type: "submit" }, "Sign in"),
    problem);
  fill(main(), form);
  input.focus();
}

function errorBox(e) {
  return h("p", { class: "error", role: "alert" }, `${e.code ? e.code.toLowerCase().replace(/_/g, " ") + ": " : ""}${e.message}`);
}

// ---------- live updates and routing ----------

let pageTimer = null;
let pageToken = 0; // bumps on navigation so a slow answer for an old page is dropped

function every(ms, fn) {
  const mine = pageToken;
  const tick = async () => {
    if (mine !== pageToken) return;
    try { await fn(); setLive(`updated ${fmtTime(Date.now()).slice(11, 19)}`); }
    catch (e) { setLive(`update failed: ${e.message}`); }
    if (mine === pageToken) pageTimer = setTimeout(tick, ms);
  };
  pageTimer = setTimeout(tick, ms);
}

function setLive(text) { const el = document.getElementById("live"); if (el) el.textContent = text; }

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/runs";
  const [path, query] = raw.split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params };
}

function route() {
  clearTimeout(pageTimer);
  pageToken++;
  const { parts, params } = parseHash();
  const section = parts[0] === "run" ? "runs" : parts[0];
  for (const a of document.querySelectorAll(".top nav a")) {
    if (a.dataset.section === section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const root = main();
  fill(root);
  if (parts[0] === "run" && parts[1] !== undefined) return runPage(root, parts[1], params.get("run_id") || "");
  if (parts[0] === "modules") return modulesPage(root, params);
  if (parts[0] === "queues") return queuesPage(root);
  return runsPage(root, params);
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", route);

// ---------- runs ----------

function runsPage(root, params) {
  document.title = "Runs · weft";
  const filter = {
    status: params.get("status") || "",
    type: params.get("type") || "",
    prefix: params.get("prefix") || "",
  };
  const tokens = (params.get("pages") || "").split(",").filter(Boolean);
  const token = tokens[tokens.length - 1] || "";
  const go = (f, pages) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(f)) if (v) q.set(k, v);
    if (pages && pages.length) q.set("pages", pages.join(","));
    location.hash = `#/runs${q.toString() ? "?" + q : ""}`;
  };

  const counts = h("ul", { class: "counts", "aria-label": "Runs per status" });
  const statusSelect = h("select", { name: "status", id: "filter-status" },
    h("option", { value: "" }, "any"),
    STATUSES.map((st) => h("option", { value: st, selected: st === filter.status }, STATUS_LABEL[st])));
  const typeInput = h("input", { name: "type", id: "filter-type", value: filter.type, list: "types", autocomplete: "off" });
  const prefixInput = h("input", { name: "prefix", id: "filter-prefix", value: filter.prefix, autocomplete: "off" });
  const types = h("datalist", { id: "types" });
  const form = h("form", {
    class: "filters", role: "search",
    onsubmit: (e) => {
      e.preventDefault();
      go({ status: statusSelect.value, type: typeInput.value.trim(), prefix: prefixInput.value });
    },
  },
  h("label", {}, "Status", statusSelect),
  h("label", {}, "Workflow type", typeInput),
  h("label", {}, "Workflow id starts with", prefixInput),
  types,
  h("button", { type: "submit", class: "primary" }, "Apply"),
  (filter.status || filter.type || filter.prefix) ? h("button", { type: "button", onclick: () => go({}) }, "Clear") : null);
  const table = h("div", { id: "runs-table" });
  const pager = h("div", { class: "pager" });
  root.append(h("h1", {}, "Runs"), counts, form, table, pager);

  api("modules").then((m) => {
    const names = [...new Set(m.modules.map((x) => x.workflow_type))];
    fill(types, ...names.map((n) => h("option", { value: n })));
  }).catch(() => {});

  const load = async () => {
    const q = new URLSearchParams();
    if (filter.type) q.set("type", filter.type);
    if (filter.prefix) q.set("prefix", filter.prefix);
    const cq = q.toString();
    if (filter.status) q.set("status", filter.status);
    if (token) q.set("page_token", token);
    q.set("page_size", "100");
    const [c, page] = await Promise.all([api(`runs/counts?${cq}`), api(`runs?${q}`)]);
    fill(counts,
      h("li", {}, h("button", { type: "button", "aria-pressed": String(!filter.status), dataset: { status: "" }, onclick: () => go({ ...filter, status: "" }) }, "All", h("span", { class: "n" }, c.total))),
      ...STATUSES.filter((st) => c.counts[st] || st === "running").map((st) =>
        h("li", {}, h("button", {
          type: "button", "aria-pressed": String(filter.status === st), dataset: { status: st },
          onclick: () => go({ ...filter, status: st }),
        }, STATUS_LABEL[st], h("span", { class: "n" }, c.counts[st] || 0)))));
    fill(table, runsTable(page.runs));
    fill(pager,
      tokens.length ? h("button", { type: "button", onclick: () => go(filter, tokens.slice(0, -1)) }, "← Newer") : null,
      page.next_page_token ? h("button", { type: "button", onclick: () => go(filter, [...tokens, page.next_page_token]) }, "Older →") : null,
      h("span", { class: "muted" }, `${page.runs.length} shown`));
  };
  load().catch((e) => fill(table, errorBox(e)));
  every(POLL_MS, load);
}

function runsTable(runs) {
  if (!runs.length) return h("p", { class: "muted" }, "No runs match.");
  return h("table", { id: "runs" },
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, "Workflow id"), h("th", { scope: "col" }, "Type"), h("th", { scope: "col" }, "Status"),
      h("th", { scope: "col", class: "num" }, "Run"), h("th", { scope: "col" }, "Started"), h("th", { scope: "col" }, "Closed"),
      h("th", { scope: "col", class: "num" }, "Duration"), h("th", { scope: "col", class: "num" }, "Events"))),
    h("tbody", {}, runs.map((r) => h("tr", { dataset: { workflowId: r.workflow_id, runId: r.run_id, status: r.status } },
      h("td", { class: "id" }, runLink(r.workflow_id, r.run_id)),
      h("td", {}, r.workflow_type),
      h("td", {}, badge(r.status)),
      h("td", { class: "num" }, r.run_number),
      h("td", {}, fmtTime(r.started_at_ms)),
      h("td", {}, fmtTime(r.closed_at_ms)),
      h("td", { class: "num" }, fmtDuration((r.closed_at_ms || Date.now()) - r.started_at_ms)),
      h("td", { class: "num" }, r.history_length)))));
}

// ---------- one run ----------

function runPage(root, workflowId, runId) {
  document.title = `${workflowId} · weft`;
  const enc = encodeURIComponent(workflowId);
  const runQ = runId ? `run_id=${encodeURIComponent(runId)}` : "";
  const head = h("div", {});
  const notice = h("div", { id: "action-result", role: "status", "aria-live": "polite" });
  const actions = h("section", { "aria-labelledby": "actions-h" });
  const pending = h("section", { id: "pending", "aria-labelledby": "pending-h" });
  const timeline = h("section", { id: "timeline-section", "aria-labelledby": "timeline-h" });
  const events = h("section", { id: "events", "aria-labelledby": "events-h" });
  root.append(h("p", {}, h("a", { href: "#/runs" }, "← Runs")), head, notice, actions, pending, timeline, events);

  let shown = null; // (status, history length) last rendered: re-render only on change
  let actionsFor = null;
  const load = async () => {
    const d = await api(`workflows/${enc}?${runQ}`);
    const key = `${d.run.run_id}:${d.run.status}:${d.run.history_length}:${d.pending_activities.map((a) => `${a.attempt}/${a.running}/${a.last_heartbeat_ms}`).join()}`;
    if (key === shown) return;
    const hist = await api(`workflows/${enc}/history?run_id=${encodeURIComponent(d.run.run_id)}&logs=true`);
    shown = key;
    renderHead(head, d);
    if (actionsFor !== `${d.run.run_id}:${d.run.status}`) {
      actionsFor = `${d.run.run_id}:${d.run.status}`;
      renderActions(actions, d, notice, () => { shown = null; return load(); });
    }
    renderPending(pending, d);
    renderTimeline(timeline, d, hist.history);
    renderEvents(events, hist);
  };
  load().catch((e) => fill(head, h("h1", {}, workflowId), errorBox(e)));
  every(POLL_MS, load);
}

function copyButton(getText, label) {
  return h("button", {
    type: "button", "aria-label": `Copy ${label}`,
    onclick: async (e) => {
      const b = e.currentTarget;
      try { await navigator.clipboard.writeText(getText()); b.textContent = "Copied"; }
      catch { b.textContent = "Copy failed"; }
      setTimeout(() => { b.textContent = "Copy"; }, 1500);
    },
  }, "Copy");
}

function payloadBlock(title, value, id) {
  const text = pretty(value);
  return h("div", { class: "payload" },
    h("h3", {}, title, copyButton(() => text, title.toLowerCase())),
    h("pre", { id }, text));
}

function renderHead(head, d) {
  const r = d.run;
  const dur = fmtDuration((r.closed_at_ms || Date.now()) - r.started_at_ms);
  const links = [];
  if (d.parent) links.push(["Parent", runLink(d.parent.workflow_id, d.parent.run_id)]);
  if (d.previous_run_id) links.push(["Previous run", runLink(r.workflow_id, d.previous_run_id, d.previous_run_id)]);
  if (d.next_run_id) links.push(["Next run", runLink(r.workflow_id, d.next_run_id, d.next_run_id)]);
  const summary = h("dl", { class: "summary" },
    [["Run id", h("span", { class: "mono", id: "run-id" }, r.run_id)],
      ["Type", r.workflow_type],
      ["Status", h("span", { id: "run-status" }, badge(r.status))],
      ["Task queue", r.task_queue],
      ["Module", h("a", { href: `#/modules?module=${encodeURIComponent(r.module_id)}`, class: "mono", id: "module-link" }, r.module_id)],
      ["Run number", r.run_number],
      ["Started", fmtTime(r.started_at_ms)],
      ["Closed", fmtTime(r.closed_at_ms)],
      ["Duration", dur],
      ["Events", r.history_length],
      ...links].map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  const payloads = h("div", { class: "cols" },
    payloadBlock("Input", d.input, "run-input"),
    d.error ? payloadBlock("Error", d.error, "run-error") : null,
    r.status === "completed" ? payloadBlock("Output", d.output, "run-output") : null);
  const children = d.children.length ? [
    h("h2", {}, `Children (${d.children.length})`),
    h("ul", {}, d.children.map((c) => h("li", { class: "child-run" }, runLink(c.workflow_id, c.run_id), " ", badge(c.status), ` ${c.workflow_type}`,
      c.parent_close_policy ? h("span", { class: "muted", title: "what happens to this child if it is still running when this run closes" }, ` · on parent close: ${c.parent_close_policy.replace("_", " ")}`) : null)))] : [];
  fill(head, h("h1", { id: "run-title" }, r.workflow_id), summary, payloads, ...children);
}

const confirmDialog = (title, text, okLabel) => new Promise((resolve) => {
  const dlg = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = okLabel;
  const reason = document.getElementById("confirm-reason");
  reason.value = "";
  dlg.returnValue = "";
  dlg.addEventListener("close", () => resolve(dlg.returnValue === "ok" ? { reason: reason.value } : null), { once: true });
  dlg.showModal();
});

function renderActions(section, d, notice, reload) {
  const r = d.run;
  const enc = encodeURIComponent(r.workflow_id);
  const show = (text, bad) => fill(notice, h("p", { class: bad ? "notice bad" : "notice" }, text));
  const download = h("a", {
    id: "download-history", download: `history-${r.run_id}.json`,
    href: `/api/v1/workflows/${enc}/history.json?run_id=${encodeURIComponent(r.run_id)}`,
  }, "Download history (weft replay file)");
  if (r.status !== "running") {
    fill(section, h("h2", { id: "actions-h" }, "Actions"), h("div", { class: "actions" }, download));
    return;
  }
  const signalName = h("input", { id: "signal-name", name: "signal", required: true, autocomplete: "off", list: "awaited" });
  const awaited = h("datalist", { id: "awaited" }, d.awaited_signals.map((a) => h("option", { value: a.name })));
  const signalPayload = h("textarea", { id: "signal-payload", name: "payload", placeholder: "null", spellcheck: "false" });
  const signalError = h("span", { class: "error", id: "signal-error", role: "alert" });
  const signalForm = h("form", {
    class: "group", id: "signal-form",
    onsubmit: async (e) => {
      e.preventDefault();
      signalError.textContent = "";
      const name = signalName.value.trim();
      if (!name) { signalError.textContent = "Name the signal."; return; }
      let payload = null;
      const text = signalPayload.value.trim();
      if (text) {
        try { payload = JSON.parse(text); } catch (err) { signalError.textContent = `The payload is not JSON: ${err.message}`; return; }
      }
      try {
        await api(`workflows/${enc}/signal`, { method: "POST", json: { name, payload } });
        show(`Signal ${name} sent.`);
        signalPayload.value = "";
        await reload();
      } catch (err) { signalError.textContent = `${err.code}: ${err.message}`; }
    },
  },
  h("label", {}, "Signal", signalName), awaited,
  h("label", {}, "Payload (JSON)", signalPayload),
  h("button", { type: "submit", class: "primary", id: "signal-send" }, "Send signal"), signalError);
  const ask = (verb, title, text) => async () => {
    const answer = await confirmDialog(title, text, verb);
    if (!answer) return;
    try {
      await api(`workflows/${enc}/${verb.toLowerCase()}`, { method: "POST", json: { reason: answer.reason } });
      show(`${verb} requested.`);
      await reload();
    } catch (err) { show(`${err.code}: ${err.message}`, true); }
  };
  fill(section, h("h2", { id: "actions-h" }, "Actions"), h("div", { class: "actions" },
    signalForm,
    h("div", { class: "group" },
      h("button", { type: "button", id: "cancel-run", onclick: ask("Cancel", "Cancel this run?", "What the run waits on completes as cancelled; the workflow may clean up, then closes as cancelled.") }, "Cancel…"),
      h("button", { type: "button", class: "danger", id: "terminate-run", onclick: ask("Terminate", "Terminate this run?", "The run ends now; no more workflow code runs.") }, "Terminate…")),
    download));
}

function renderPending(section, d) {
  const parts = [h("h2", { id: "pending-h" }, "Pending work")];
  if (d.run.status !== "running") {
    fill(section, ...parts, h("p", { class: "muted" }, "Nothing: the run is closed."));
    return;
  }
  if (d.pending_activities.length) {
    parts.push(h("table", { id: "pending-activities" },
      h("caption", { class: "muted" }, "Activities"),
      h("thead", {}, h("tr", {}, ["#", "Activity", "Queue", "Attempt", "State", "Last heartbeat", "Heartbeat details", "Last failure"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, d.pending_activities.map((a) => h("tr", {},
        h("td", {}, a.handle), h("td", {}, a.activity_name), h("td", {}, a.task_queue), h("td", { class: "num" }, a.attempt),
        h("td", {}, a.running ? `running since ${fmtTime(a.claimed_at_ms)}` : "waiting for a worker"),
        h("td", {}, fmtTime(a.last_heartbeat_ms)),
        h("td", {}, a.heartbeat_details === null ? "—" : h("code", {}, JSON.stringify(a.heartbeat_details))),
        h("td", {}, a.last_failure ? `${a.last_failure.kind}: ${a.last_failure.message}` : "—"))))));
  }
  if (d.pending_timers.length) {
    parts.push(h("table", { id: "pending-timers" }, h("caption", { class: "muted" }, "Timers"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "#"), h("th", { scope: "col" }, "Fires at"), h("th", { scope: "col" }, "In"))),
      h("tbody", {}, d.pending_timers.map((t) => h("tr", {}, h("td", {}, t.handle), h("td", {}, fmtTime(t.fire_at_ms)), h("td", {}, fmtDuration(t.fire_at_ms - Date.now())))))));
  }
  if (d.awaited_signals.length) {
    parts.push(h("table", { id: "awaited-signals" }, h("caption", { class: "muted" }, "Awaited signals"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "#"), h("th", { scope: "col" }, "Signal"))),
      h("tbody", {}, d.awaited_signals.map((a) => h("tr", {}, h("td", {}, a.handle), h("td", { class: "signal-name" }, a.name))))));
  }
  const running = d.children.filter((c) => c.status === "running");
  if (running.length) parts.push(h("p", {}, `Child runs: `, running.map((c) => [runLink(c.workflow_id, c.run_id), " "])));
  if (parts.length === 1) parts.push(h("p", { class: "muted" }, "Nothing pending."));
  fill(section, ...parts);
}

// ---------- the timeline ----------

// One row per operation of the history: activities (each attempt a bar), timers, child runs
// and signal waits, from the event that started it to the one that ended it.
function timelineRows(history, d) {
  const events = history.events;
  const start = events.length ? events[0].timestamp_ms : d.run.started_at_ms;
  const end = d.run.closed_at_ms || Date.now();
  const ops = new Map();
  const signalWaiters = [];
  const unclaimed = [];
  const close = (op, at, outcome, detail) => {
    if (!op || op.end !== null) return;
    op.end = at; op.outcome = outcome; op.detail = detail;
  };
  const outcomeOf = (completion) => {
    if ("ok" in completion) return ["ok", "completed"];
    const err = completion.err;
    if (err === "cancelled") return ["cancelled", "cancelled"];
    if (err.timed_out !== undefined) return ["timedout", `timed out: ${err.timed_out}`];
    const info = err.activity_failed || err.child_failed || {};
    return ["failed", `${info.kind}: ${info.message}`];
  };
  for (const e of events) {
    const at = e.timestamp_ms;
    switch (e.type) {
      case "ActivityScheduled": ops.set(e.handle, { kind: "activity", handle: e.handle, name: e.name, start: at, end: null, seq: e.seq }); break;
      case "TimerStarted": ops.set(e.handle, { kind: "timer", handle: e.handle, name: `timer ${fmtDuration(e.duration_ms)}`, start: at, end: null, seq: e.seq }); break;
      case "ChildWorkflowStarted": ops.set(e.handle, { kind: "child", handle: e.handle, name: `${e.workflow_type} ${e.workflow_id}`, start: at, end: null, seq: e.seq }); break;
      case "SignalAwaited": {
        const op = { kind: "signal", handle: e.handle, name: `signal ${e.name}`, signal: e.name, start: at, end: null, seq: e.seq };
        ops.set(e.handle, op);
        const i = unclaimed.indexOf(e.name);
        if (i >= 0) { unclaimed.splice(i, 1); close(op, at, "signal", "received before it was awaited"); }
        else signalWaiters.push(op);
        break;
      }
      case "SignalReceived": {
        const i = signalWaiters.findIndex((op) => op.signal === e.name && op.end === null);
        if (i >= 0) close(signalWaiters.splice(i, 1)[0], at, "signal", "received");
        else unclaimed.push(e.name);
        break;
      }
      case "ActivityCompleted": case "ChildWorkflowCompleted": {
        const [outcome, detail] = outcomeOf(e.completion);
        close(ops.get(e.handle), at, outcome, detail);
        break;
      }
      case "TimerFired": close(ops.get(e.handle), at, "timer", "fired"); break;
      case "CancelRequested": {
        const op = ops.get(e.handle);
        if (op && (op.kind === "timer" || op.kind === "signal")) close(op, at, "cancelled", "cancelled by the workflow");
        break;
      }
      case "RunCancelRequested": case "RunCompleted": case "RunFailed": case "RunContinuedAsNew": case "RunTerminated":
        for (const op of ops.values()) close(op, at, "cancelled", e.type === "RunCancelRequested" ? "cancelled with the run" : "the run closed");
        break;
      default: break;
    }
  }
  const attempts = new Map();
  for (const a of d.retried_attempts) {
    if (!attempts.has(a.handle)) attempts.set(a.handle, []);
    attempts.get(a.handle).push(a);
  }
  const rows = [...ops.values()].sort((a, b) => a.seq - b.seq);
  for (const op of rows) {
    const openEnd = op.end === null;
    const last = openEnd ? end : op.end;
    const lastOutcome = openEnd ? "running" : op.outcome;
    if (op.kind !== "activity") {
      op.bars = [{ from: op.start, to: last, cls: op.kind === "timer" || op.kind === "signal" || op.kind === "child" ? (openEnd ? "running" : (op.outcome === "cancelled" || op.outcome === "failed" || op.outcome === "timedout" ? op.outcome : op.kind)) : lastOutcome, title: `${op.name}: ${openEnd ? "waiting" : op.detail}` }];
      continue;
    }
    const retried = attempts.get(op.handle) || [];
    op.bars = retried.map((a, i) => ({
      from: a.started_at_ms || (i ? retried[i - 1].retry_at_ms : op.start),
      to: a.ended_at_ms,
      cls: a.error_kind === "TimedOut" ? "timedout" : "failed",
      attempt: a.attempt,
      title: `${op.name} attempt ${a.attempt}: ${a.error_kind}: ${a.error_message}`,
    }));
    const finalAttempt = retried.length + 1;
    const pendingInfo = d.pending_activities.find((p) => p.handle === op.handle);
    const from = retried.length ? retried[retried.length - 1].retry_at_ms : op.start;
    op.bars.push({
      from, to: last, cls: lastOutcome, attempt: pendingInfo ? pendingInfo.attempt : finalAttempt,
      title: `${op.name} attempt ${pendingInfo ? pendingInfo.attempt : finalAttempt}: ${openEnd ? (pendingInfo && pendingInfo.running ? "running" : "waiting for a worker") : op.detail}`,
    });
  }
  return { rows, start, end: Math.max(end, start + 1) };
}

function renderTimeline(section, d, history) {
  const t0 = performance.now();
  const { rows, start, end } = timelineRows(history, d);
  const container = h("div", { class: "timeline", id: "timeline" });
  const heading = h("h2", { id: "timeline-h" }, `Timeline (${rows.length} operations)`);
  const legend = h("div", { class: "legend", "aria-hidden": "true" },
    [["ok", "completed"], ["failed", "failed"], ["timedout", "timed out"], ["cancelled", "cancelled"], ["running", "running / waiting"], ["timer", "timer"], ["signal", "signal"], ["child", "child run"]]
      .map(([c, t]) => h("span", { class: c }, t)));
  if (!rows.length) {
    fill(section, heading, h("p", { class: "muted" }, "No activities, timers, child runs or signal waits yet."));
    return;
  }
  const expanded = section.dataset.expanded === "true";
  const grouped = rows.length > GROUP_OVER && !expanded;
  const display = grouped ? groupRows(rows) : rows;
  const toggle = rows.length > GROUP_OVER ? h("button", {
    type: "button", id: "timeline-toggle",
    onclick: () => { section.dataset.expanded = String(!expanded); renderTimeline(section, d, history); },
  }, expanded ? "Group by name" : `Show all ${rows.length} operations`) : null;
  container.append(drawTimeline(display, start, end, grouped || rows.length > GROUP_OVER ? 10 : 18));
  fill(section, heading, legend, toggle, container);
  section.dataset.renderMs = String(Math.round(performance.now() - t0));
}

// Many operations of one name become one row: the span from the first start to the last end,
// one thin bar per operation inside it, and counts per outcome in the label.
function groupRows(rows) {
  const groups = new Map();
  for (const op of rows) {
    const key = `${op.kind}:${op.kind === "activity" ? op.name : op.kind}`;
    if (!groups.has(key)) groups.set(key, { kind: op.kind, name: op.kind === "activity" ? op.name : op.kind, members: [], seq: op.seq });
    groups.get(key).members.push(op);
  }
  return [...groups.values()].map((g) => {
    const tally = {};
    for (const m of g.members) { const c = m.bars[m.bars.length - 1].cls; tally[c] = (tally[c] || 0) + 1; }
    const summary = Object.entries(tally).map(([c, n]) => `${n} ${c}`).join(", ");
    return {
      kind: g.kind, name: `${g.name} ×${g.members.length} (${summary})`, seq: g.seq, group: true,
      bars: g.members.flatMap((m) => m.bars.map((b) => ({ ...b, title: b.title }))),
    };
  });
}

function drawTimeline(rows, start, end, rowH) {
  const labelW = 260, width = 1100, plotW = width - labelW - 16, axisH = 24;
  const height = axisH + rows.length * (rowH + 4) + 8;
  const span = end - start;
  const x = (t) => labelW + Math.max(0, Math.min(1, (t - start) / span)) * plotW;
  const svg = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `Timeline of ${rows.length} rows over ${fmtDuration(span)}` });
  const axis = s("g", { class: "axis" });
  const step = niceStep(span / 8);
  for (let t = 0; t <= span; t += step) {
    axis.append(s("line", { x1: x(start + t), x2: x(start + t), y1: axisH - 4, y2: height }),
      s("text", { x: x(start + t) + 2, y: 12 }, fmtDuration(t)));
  }
  svg.append(axis);
  rows.forEach((row, i) => {
    const y = axisH + i * (rowH + 4);
    const g = s("g", { class: `row ${row.kind}`, dataset: { kind: row.kind, group: row.group ? "true" : "false" } });
    const label = row.name.length > 40 ? row.name.slice(0, 39) + "…" : row.name;
    g.append(s("text", { x: 4, y: y + rowH - 3 }, s("title", {}, row.name), label));
    for (const b of row.bars) {
      const x1 = x(b.from), x2 = Math.max(x(b.to), x1 + 2);
      const rect = s("rect", {
        class: `bar ${b.cls}`, x: x1, y, width: x2 - x1, height: rowH, rx: 2, tabindex: row.group ? null : 0,
        dataset: { kind: row.kind, attempt: b.attempt || "", outcome: b.cls },
        "aria-label": b.title,
      }, s("title", {}, `${b.title} (${fmtDuration(b.to - b.from)}, +${fmtDuration(b.from - start)})`));
      g.append(rect);
    }
    svg.append(g);
  });
  return svg;
}

function niceStep(raw) {
  const pow = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1))));
  for (const m of [1, 2, 5, 10]) if (pow * m >= raw) return pow * m;
  return pow * 10;
}

// ---------- events and log lines ----------

function eventSummary(e) {
  const rest = readable({ ...e });
  delete rest.seq; delete rest.timestamp_ms; delete rest.type;
  const keys = Object.keys(rest);
  if (!keys.length) return "";
  const short = JSON.stringify(rest);
  return short.length > 140 ? short.slice(0, 139) + "…" : short;
}

function renderEvents(section, hist) {
  const events = hist.history.events;
  const t0 = events.length ? events[0].timestamp_ms : 0;
  const logsAfter = new Map();
  for (const l of hist.logs) {
    if (!logsAfter.has(l.after_event)) logsAfter.set(l.after_event, []);
    logsAfter.get(l.after_event).push(l);
  }
  const logRows = (n) => (logsAfter.get(n) || []).map((l) => h("tr", { class: "log" },
    h("td", {}), h("td", {}), h("td", { class: `lvl-${l.level}` }, `log ${l.level}`), h("td", { class: "log-message" }, l.message)));
  const open = new Set([...section.querySelectorAll("details[open]")].map((el) => el.dataset.seq));
  const rows = [...logRows(0)];
  for (const e of events) {
    const details = h("details", { dataset: { seq: e.seq }, open: open.has(String(e.seq)) },
      h("summary", {}, eventSummary(e) || "details"), h("pre", {}, pretty(readable(e))));
    rows.push(h("tr", { dataset: { seq: e.seq, type: e.type } },
      h("td", { class: "num" }, e.seq),
      h("td", { class: "num", title: fmtTime(e.timestamp_ms) }, `+${fmtDuration(e.timestamp_ms - t0)}`),
      h("td", {}, e.type),
      h("td", {}, details)));
    rows.push(...logRows(e.seq));
  }
  fill(section,
    h("h2", { id: "events-h" }, `Events (${events.length})`),
    hist.logs_error ? h("p", { class: "notice bad" }, `Log lines unavailable: ${hist.logs_error}`) : null,
    h("table", { id: "event-table" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col", class: "num" }, "Seq"), h("th", { scope: "col", class: "num" }, "Time"), h("th", { scope: "col" }, "Type"), h("th", { scope: "col" }, "Details"))),
      h("tbody", {}, rows)));
}

// ---------- modules ----------

function modulesPage(root, params) {
  document.title = "Modules · weft";
  const highlight = params.get("module") || "";
  const list = h("div", { id: "modules-list" });
  const typeInput = h("input", { id: "upload-type", name: "type", required: true, autocomplete: "off" });
  const fileInput = h("input", { id: "upload-file", name: "component", type: "file", accept: ".wasm,application/wasm", required: true });
  const result = h("div", { id: "upload-result", role: "status", "aria-live": "polite" });
  const load = async () => {
    const m = await api("modules");
    fill(list, modulesTable(m.modules, highlight));
    const row = highlight && list.querySelector("tr.highlight");
    if (row && !row.dataset.scrolled) { row.scrollIntoView({ block: "center" }); row.dataset.scrolled = "1"; }
  };
  const form = h("form", {
    class: "inline", id: "upload-form",
    onsubmit: async (e) => {
      e.preventDefault();
      fill(result);
      const file = fileInput.files[0];
      const type = typeInput.value.trim();
      if (!type || !file) { fill(result, h("p", { class: "error" }, "Name the workflow type and choose a .wasm component.")); return; }
      try {
        const bytes = await file.arrayBuffer();
        const r = await api(`modules?type=${encodeURIComponent(type)}`, { method: "POST", body: bytes });
        fill(result, h("p", { class: "notice" }, `Uploaded ${file.name} as ${type}: module `, h("code", {}, r.module_id)));
        await load();
      } catch (err) { fill(result, errorBox(err)); }
    },
  }, h("label", {}, "Workflow type", typeInput), h("label", {}, "Component (.wasm)", fileInput),
  h("button", { type: "submit", class: "primary" }, "Upload"));
  root.append(h("h1", {}, "Modules"), list, h("h2", {}, "Upload a module"), form, result);
  load().catch((e) => fill(list, errorBox(e)));
  every(POLL_MS * 2, load);
}

function modulesTable(modules, highlight) {
  if (!modules.length) return h("p", { class: "muted" }, "No module uploaded yet.");
  return h("table", { id: "modules" },
    h("thead", {}, h("tr", {}, ["Workflow type", "Module (SHA-256)", "Size", "Uploaded", "Runs running", "Runs closed"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, modules.map((m) => h("tr", { class: m.module_id === highlight ? "highlight" : null, id: `module-${m.module_id}` },
      h("td", {}, m.workflow_type, m.newest ? [" ", h("span", { class: "badge completed" }, "newest")] : null),
      h("td", { class: "id mono" }, m.module_id),
      h("td", { class: "num" }, fmtBytes(m.size_bytes)),
      h("td", {}, fmtTime(m.uploaded_at_ms)),
      h("td", { class: "num" }, h("a", { href: `#/runs?type=${encodeURIComponent(m.workflow_type)}&status=running` }, m.running_runs)),
      h("td", { class: "num" }, m.closed_runs)))));
}

// ---------- task queues ----------

function queuesPage(root) {
  document.title = "Task queues · weft";
  const list = h("div", { id: "queues-list" });
  root.append(h("h1", {}, "Task queues"),
    h("p", { class: "muted" }, "Tasks are counted across the cluster; workers and outcomes are those this server node saw (outcomes since it started)."),
    list);
  const load = async () => {
    const q = await api("queues");
    if (!q.queues.length) { fill(list, h("p", { class: "muted" }, "No task queue has tasks or workers.")); return; }
    fill(list, ...q.queues.map((queue) => h("section", { class: "queue", dataset: { queue: queue.name } },
      h("h2", {}, queue.name),
      h("dl", { class: "summary" },
        h("dt", {}, "Ready"), h("dd", { class: "ready" }, queue.ready_tasks),
        h("dt", {}, "Running"), h("dd", {}, queue.running_tasks),
        h("dt", {}, "Backing off"), h("dd", {}, queue.backing_off_tasks),
        h("dt", {}, "Oldest ready task waits"), h("dd", {}, queue.ready_tasks ? fmtDuration(queue.oldest_ready_age_ms) : "—")),
      h("div", { class: "cols" },
        h("div", {}, h("h3", {}, "Workers (last minute)"),
          queue.workers.length ? h("table", {}, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Worker id"), h("th", { scope: "col" }, "Last poll"))),
            h("tbody", {}, queue.workers.map((w) => h("tr", {}, h("td", { class: "id" }, w.worker_id), h("td", {}, fmtTime(w.last_poll_ms))))))
            : h("p", { class: "muted" }, "No worker polled in the last minute.")),
        h("div", {}, h("h3", {}, "Activities"),
          queue.activities.length ? h("table", {}, h("thead", {}, h("tr", {}, ["Activity", "Completed", "Failed", "Timed out", "Last"].map((t) => h("th", { scope: "col" }, t)))),
            h("tbody", {}, queue.activities.map((a) => h("tr", {}, h("td", {}, a.activity_name), h("td", { class: "num" }, a.completed),
              h("td", { class: "num" }, a.failed), h("td", { class: "num" }, a.timed_out), h("td", {}, fmtTime(a.last_at_ms))))))
            : h("p", { class: "muted" }, "No attempt finished on this node yet."))))));
  };
  load().catch((e) => fill(list, errorBox(e)));
  every(POLL_MS, load);
}
