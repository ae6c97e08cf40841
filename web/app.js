// The sbx dashboard (docs/dashboard.md).  Plain JS, no build step, no
// network but the broker: the page calls the broker's /v1/ API with the
// session cookie and the session's CSRF token, and follows /v1/events
// (Server-Sent Events) to update itself without reloading.
"use strict";

const $ = (id) => document.getElementById(id);
let session = null;
let events = null;
let refreshTimer = null;
const records = [];          // the last records seen, newest last
const RECORDS_MAX = 1000;
const CHART_DAYS = 7;
const STATS_EVERY_MS = 2 * 60 * 1000;
let stats = null;            // GET /v1/stats: the journal's counts per day
let statsTimer = null;
let alertRecs = [];          // GET /v1/alerts at load, then alert.raised from the stream
let findings = null;         // GET /v1/drift: the open findings (admins)
let driftTimer = null;

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k ?? "")));
  return e;
}

async function call(method, path, body) {
  const opts = { method, credentials: "same-origin", headers: {} };
  if (method !== "GET") {
    opts.headers["X-CSRF-Token"] = session ? session.csrf : "";
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body || {});
  }
  const r = await fetch(path, opts);
  let j = {};
  try { j = await r.json(); } catch (e) { /* an empty answer */ }
  if (r.status === 401 && session && path !== "/web/signin") signedOut();
  return { status: r.status, body: j };
}

// A JSON-lines answer (/v1/audit, /v1/alerts): the records, or null.
async function callLines(path) {
  const r = await fetch(path, { credentials: "same-origin" });
  if (r.status === 401 && session) signedOut();
  if (r.status !== 200) return null;
  const text = await r.text();
  const out = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    try { out.push(JSON.parse(line)); } catch (e) { /* a cut line */ }
  }
  return out;
}

function say(text) { $("status").textContent = text; }

function canAudit() {
  return !!session && (session.admin || String(session.scopes || "").split(",").includes("audit"));
}

// ---- time ----------------------------------------------------------------------

function left(iso) {
  let s = Math.max(0, Math.round((Date.parse(iso) - Date.now()) / 1000));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  s %= 60;
  return (h ? h + "h " : "") + (h || m ? m + "m " : "") + s + "s";
}

function human(secs) {
  if (secs % 3600 === 0) return secs / 3600 + "h";
  if (secs % 60 === 0) return secs / 60 + "m";
  return secs + "s";
}

function tickCountdowns() {
  for (const c of document.querySelectorAll(".countdown")) {
    const exp = c.dataset.expires;
    if (Date.parse(exp) <= Date.now()) {
      // The broker ends it and says so (grant.expired); until then, 0.
      c.textContent = "ending";
      scheduleRefresh();
    } else {
      c.textContent = left(exp);
    }
  }
}

// ---- the lists --------------------------------------------------------------------

function fill(body, empty, rows) {
  $(body).replaceChildren(...rows);
  $(empty).hidden = rows.length > 0;
}

// A list the API gives in pages (docs/api.md, "Lists in pages"): every page,
// up to LIST_PAGES of LIST_LIMIT, as one answer of the first page's shape.
const LIST_LIMIT = 1000, LIST_PAGES = 10;
async function listAll(path) {
  const sep = path.includes("?") ? "&" : "?";
  let r = await call("GET", `${path}${sep}limit=${LIST_LIMIT}`);
  if (r.status !== 200) return r;
  const items = r.body.requests || [];
  let partial = false;
  for (let n = 1; r.body.next_cursor; n++) {
    // Say so rather than show part of a list as if it were all of it.
    if (n >= LIST_PAGES) { partial = true; break; }
    r = await call("GET", `${path}${sep}limit=${LIST_LIMIT}&cursor=${encodeURIComponent(r.body.next_cursor)}`);
    if (r.status !== 200) { partial = true; break; }
    items.push(...(r.body.requests || []));
  }
  if (partial) say(`Only the first ${items.length} of ${path.slice(4)} are shown; sbxctl lists them all.`);
  return { status: 200, body: { requests: items } };
}

async function refresh() {
  refreshTimer = null;
  if (!session) return;
  // Live grants only: an admin's are everyone's.
  const [grants, pending, mine] = await Promise.all([
    listAll("/v1/grants"), listAll("/v1/pending"), listAll("/v1/requests")]);
  if (grants.status === 200) {
    // Besides one's own (an admin: everyone's), the grants of requests one
    // may decide that the event stream saw start: asked for one by one,
    // so the broker's rules say who sees what.
    const have = new Set(grants.body.requests.map((g) => g.id));
    const seen = [...new Set(records.filter((r) => r.event === "grant.activated" && !have.has(r.id))
      .map((r) => r.id))].slice(-50);
    const more = await Promise.all(seen.map((id) => call("GET", "/v1/requests/" + id)));
    for (const m of more) if (m.status === 200 && m.body.request) grants.body.requests.push(m.body.request);
    fill("grants-body", "grants-empty", grants.body.requests.filter((g) => g.state === "active").map((g) =>
      el("tr", { id: "grant-" + g.id },
        el("td", {}, g.id), el("td", {}, g.user), el("td", {}, g.role),
        el("td", {}, el("span", { class: "countdown", id: "countdown-" + g.id, "data-expires": g.expires_at },
          left(g.expires_at))))));
  }
  if (pending.status === 200) {
    fill("pending-body", "pending-empty", pending.body.requests.map((q) =>
      el("tr", { id: "pending-" + q.id },
        el("td", {}, q.id), el("td", {}, q.user), el("td", {}, q.role), el("td", {}, human(q.duration)),
        el("td", {}, q.reason || ""),
        el("td", {},
          el("input", { id: "shorten-" + q.id, size: "4", placeholder: human(q.duration),
            "aria-label": `Approve request ${q.id} for a shorter time (e.g. 30m)` }),
          " ",
          el("button", { type: "button", class: "approve", id: "approve-" + q.id,
            "aria-label": `Approve request ${q.id} of ${q.user}`, onclick: () => decide(q.id, "approve") }, "Approve"),
          " ",
          el("button", { type: "button", class: "deny", id: "deny-" + q.id,
            "aria-label": `Deny request ${q.id} of ${q.user}`, onclick: () => decide(q.id, "deny") }, "Deny")))));
  } else {
    fill("pending-body", "pending-empty", []);
  }
  if (mine.status === 200) {
    fill("mine-body", "mine-empty", mine.body.requests.map((q) =>
      el("tr", { id: "mine-" + q.id },
        el("td", {}, q.id), el("td", {}, q.role), el("td", {}, q.state), el("td", {}, q.reason || ""),
        el("td", {}, q.state === "pending"
          ? el("button", { type: "button", id: "cancel-" + q.id, onclick: () => act(q.id, "cancel") }, "Cancel")
          : q.state === "active"
            ? el("button", { type: "button", id: "drop-" + q.id, onclick: () => act(q.id, "drop") }, "Drop")
            : ""))));
  }
}

function scheduleRefresh() {
  if (!refreshTimer) refreshTimer = setTimeout(refresh, 150);
}

async function decide(id, what) {
  const shorter = $("shorten-" + id) ? $("shorten-" + id).value.trim() : "";
  const body = what === "approve" && shorter ? { duration: shorter } : {};
  const r = await call("POST", `/v1/requests/${id}/${what}`, body);
  say(r.status === 200 ? (r.body.message || `${what}d request ${id}`) : (r.body.message || `HTTP ${r.status}`));
  scheduleRefresh();
}

async function act(id, what) {
  const r = await call("POST", `/v1/requests/${id}/${what}`, { reason: "from the dashboard" });
  say(r.body.message || `HTTP ${r.status}`);
  scheduleRefresh();
}

async function loadRoles() {
  const r = await call("GET", "/v1/roles");
  const sel = $("ask-role");
  if (r.status !== 200) return;
  sel.replaceChildren(...r.body.roles.filter((x) => x.how === "eligible").map((x) =>
    el("option", { value: x.role }, `${x.role} (up to ${human(x.max_duration)})`)));
  $("ask").hidden = sel.options.length === 0;
}

async function ask(ev) {
  ev.preventDefault();
  const body = { role: $("ask-role").value };
  if ($("ask-duration").value) body.duration = $("ask-duration").value;
  if ($("ask-reason").value) body.reason = $("ask-reason").value;
  if ($("ask-ticket").value) body.ticket = $("ask-ticket").value;
  const r = await call("POST", "/v1/requests", body);
  $("ask-result").textContent = r.body.message || `HTTP ${r.status}`;
  $("ask-result").className = r.status === 200 ? "" : "error";
  scheduleRefresh();
}

// ---- the live feed ---------------------------------------------------------------

function feedQuery() {
  const q = new URLSearchParams({ count: "200" });
  for (const k of ["event", "user", "role", "outcome"]) {
    const v = $("feed-" + k).value.trim();
    if (v) q.set(k, v);
  }
  return q.toString();
}

function follow() {
  if (events) events.close();
  $("feed-list").replaceChildren();
  records.length = 0;
  // The chart and the alerts use every record; the feed shows the filtered ones.
  events = new EventSource("/v1/events?" + feedQuery());
  events.onmessage = (m) => {
    let rec;
    try { rec = JSON.parse(m.data); } catch (e) { return; }
    onRecord(rec);
  };
  events.addEventListener("dropped", () => say("The event stream fell behind and starts again."));
  events.addEventListener("gap", () => say("Some older events are not shown (audit query has them)."));
  events.onerror = async () => {
    if (!session) return;
    say("The event stream was interrupted; reconnecting…");
    // The session may have ended (idle, signed out elsewhere): then sign in again.
    const r = await call("GET", "/web/session");
    if (r.status === 401) signedOut();
  };
  events.onopen = () => say("");
}

function outcome(rec) {
  if (rec.event === "access.checked") return rec.outcome === "denied" ? "refused" : "allowed";
  if (rec.event === "request.denied") return "denied";
  return "";
}

function onRecord(rec) {
  records.push(rec);
  if (records.length > RECORDS_MAX) records.shift();
  const text = `${rec.time.slice(11, 19)} ${rec.event} ${rec.user || rec.actor || ""}` +
    (rec.role ? ` ${rec.role}` : "") + (rec.id ? ` #${rec.id}` : "") + (rec.reason ? ` — ${rec.reason}` : "");
  const list = $("feed-list");
  list.prepend(el("li", { class: outcome(rec), "data-seq": rec.seq }, text));
  while (list.children.length > 200) list.lastChild.remove();
  if (/^(request|grant)\./.test(rec.event)) scheduleRefresh();
  if (rec.event === "alert.raised" && !alertRecs.some((a) => a.seq === rec.seq)) {
    alertRecs.push(rec);
    if (alertRecs.length > 200) alertRecs.shift();
    drawAlerts();
  }
  if (rec.event.startsWith("drift.") && session.admin) scheduleDrift();
  if (countable(rec)) drawChart();
}

// ---- alerts and drift ------------------------------------------------------------

// The alerts of the last week from the journal (audit scope), the open
// drift findings (admins); the stream adds to them as they happen.
async function loadAlerts() {
  if (!canAudit()) return;
  const since = new Date(Date.now() - CHART_DAYS * 86400000).toISOString().slice(0, 19) + "Z";
  const got = await callLines("/v1/alerts?since=" + encodeURIComponent(since));
  if (!got) return;
  const have = new Set(got.map((r) => r.seq));
  alertRecs = got.concat(alertRecs.filter((r) => !have.has(r.seq))).sort((a, b) => a.seq - b.seq).slice(-200);
  drawAlerts();
}

async function loadDrift() {
  driftTimer = null;
  if (!session || !session.admin) return;
  const r = await call("GET", "/v1/drift");
  if (r.status !== 200) return;
  findings = r.body.findings || [];
  drawAlerts();
}

function scheduleDrift() {
  if (!driftTimer) driftTimer = setTimeout(loadDrift, 500);
}

function drawAlerts() {
  $("alerts").replaceChildren(...alertRecs.slice(-50).reverse().map((r) =>
    el("li", {}, `${r.time.slice(0, 19).replace("T", " ")} ${r.rule || "alert"}: ${r.count || ""} ${r.matched || ""}` +
      (r.user ? ` (${r.user})` : "") + (r.role ? ` ${r.role}` : ""))));
  $("alerts-empty").hidden = alertRecs.length > 0;
  const f = findings || [];
  $("drift").replaceChildren(...f.slice(0, 100).map((x) =>
    el("li", {}, `${x.kind}: ${x.subject} in ${x.file}${x.line ? ":" + x.line : ""}` +
      (x.found ? ` — ${x.found}` : "") + (x.policy_says ? ` (policy: ${x.policy_says})` : ""))));
  $("drift-empty").hidden = f.length > 0;
  $("drift-part").hidden = findings === null;
}

// ---- the chart ---------------------------------------------------------------------

// The journal's counts (GET /v1/stats, every few minutes), plus what the
// stream brought since: the records after the count's through_seq.
async function loadStats() {
  if (statsTimer) clearTimeout(statsTimer);
  statsTimer = setTimeout(loadStats, STATS_EVERY_MS);
  if (!session) return;
  const r = await call("GET", "/v1/stats?days=" + CHART_DAYS);
  if (r.status === 200) {
    stats = r.body;
    drawChart();
  } else if (r.status === 429 || r.status === 503) {
    clearTimeout(statsTimer);
    statsTimer = setTimeout(loadStats, 3000);
  } else if (!stats) {
    $("chart").replaceChildren(el("p", { class: "empty" },
      "The counts are not available: " + (r.body.message || `HTTP ${r.status}`)));
  }
}

// A record the chart counts, that the counts from the journal do not have yet.
function countable(rec) {
  if (!stats || rec.seq <= stats.through_seq) return false;
  if (stats.scope !== "all" && rec.user !== session.person && rec.actor !== session.person) return false;
  return rec.event === "grant.activated" || (rec.event === "access.checked" && rec.outcome === "denied");
}

// Grants per day per role (stacked bars) and refused logins per day (a
// dashed line), with the same numbers as a table for screen readers and
// keyboards.
function drawChart() {
  if (!stats) return;
  const NS = "http://www.w3.org/2000/svg";
  const today = new Date().toISOString().slice(0, 10);
  const byDay = new Map(stats.per_day.map((d) => [d.date, { grants: { ...d.grants }, refused: d.refused_logins }]));
  // The page stayed open past midnight: days move on.
  for (let i = CHART_DAYS - 1; i >= 0; i--) {
    const d = new Date(Date.parse(today) - i * 86400000).toISOString().slice(0, 10);
    if (!byDay.has(d)) byDay.set(d, { grants: {}, refused: 0 });
  }
  const seen = new Set();
  for (const r of records) {
    if (seen.has(r.seq) || !countable(r)) continue;
    seen.add(r.seq);
    const day = byDay.get(r.time.slice(0, 10));
    if (!day) continue;
    if (r.event === "grant.activated") day.grants[r.role] = (day.grants[r.role] || 0) + 1;
    else day.refused++;
  }
  const days = [...byDay.keys()].sort().slice(-CHART_DAYS);
  const roles = [...new Set(days.flatMap((d) => Object.keys(byDay.get(d).grants)))].sort();
  const grants = days.map((d) => roles.map((role) => byDay.get(d).grants[role] || 0));
  const refused = days.map((d) => byDay.get(d).refused);
  drawTable(days, roles, grants, refused);
  const max = Math.max(1, ...grants.map((g) => g.reduce((a, b) => a + b, 0)), ...refused);
  const W = 560, H = 200, L = 30, B = 20, colW = (W - L) / days.length;
  const colors = ["#0550ae", "#116329", "#8250df", "#bc4c00", "#1b7c83", "#a40e26"];
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H + 30}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `Grants per day per role, and refused logins per day, over the last ${days.length} days` +
    ` (${stats.scope === "all" ? "everyone's" : "your own"}; the table below has the numbers)`);
  svg.setAttribute("aria-describedby", "chart-table");
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.append(e);
    return e;
  };
  const y = (v) => H - B - (v / max) * (H - B - 10);
  add("line", { x1: L, y1: H - B, x2: W, y2: H - B, stroke: "#888" });
  add("text", { x: 2, y: y(max) + 4 }, max);
  days.forEach((d, i) => {
    let base = 0;
    roles.forEach((role, k) => {
      const v = grants[i][k];
      if (!v) return;
      add("rect", { x: L + i * colW + 6, y: y(base + v), width: colW - 12, height: y(base) - y(base + v),
        fill: colors[k % colors.length] }).append(Object.assign(document.createElementNS(NS, "title"),
        { textContent: `${d} ${role}: ${v}` }));
      base += v;
    });
    add("text", { x: L + i * colW + 6, y: H - 4 }, d.slice(5));
  });
  add("polyline", { fill: "none", stroke: "#a40e26", "stroke-width": 2, "stroke-dasharray": "4 3",
    points: refused.map((v, i) => `${L + i * colW + colW / 2},${y(v)}`).join(" ") });
  let lx = L;
  roles.concat(["refused logins"]).forEach((name, k) => {
    add("rect", { x: lx, y: H + 12, width: 10, height: 10, fill: k < roles.length ? colors[k % colors.length] : "#a40e26" });
    add("text", { x: lx + 14, y: H + 21 }, name);
    lx += 24 + name.length * 6.5;
  });
  $("chart").replaceChildren(svg);
}

function drawTable(days, roles, grants, refused) {
  $("chart-table").replaceChildren(
    el("caption", {}, `Grants per role and refused logins, per day (UTC), ${stats.scope === "all" ? "everyone's" : "your own"}`),
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Day"),
      ...roles.map((r) => el("th", { scope: "col" }, r)),
      el("th", { scope: "col" }, "Grants"), el("th", { scope: "col" }, "Refused logins"))),
    el("tbody", {}, ...days.map((d, i) => el("tr", { id: "chart-day-" + d },
      el("th", { scope: "row" }, d),
      ...grants[i].map((v) => el("td", {}, v)),
      el("td", {}, grants[i].reduce((a, b) => a + b, 0)),
      el("td", {}, refused[i])))));
}

// ---- signing in and out ------------------------------------------------------------

function signedOut() {
  session = null;
  stats = null;
  findings = null;
  alertRecs = [];
  if (statsTimer) clearTimeout(statsTimer);
  statsTimer = null;
  if (events) events.close();
  events = null;
  $("app").hidden = true;
  $("who").hidden = true;
  $("signin").hidden = false;
  $("signin-user").focus();
}

function signedIn(s) {
  session = s;
  $("person").textContent = s.person + (s.admin ? " (admin)" : "");
  $("host").textContent = s.host ? "· " + s.host : "";
  $("signin").hidden = true;
  $("who").hidden = false;
  $("app").hidden = false;
  $("admin").hidden = !s.admin && !canAudit();
  refresh();
  loadRoles();
  follow();
  loadStats();
  loadAlerts();
  loadDrift();
}

async function signin(ev) {
  ev.preventDefault();
  const token = $("signin-token").value.trim();
  const body = token ? { token } : { user: $("signin-user").value.trim(), password: $("signin-password").value };
  $("signin-submit").disabled = true;
  const r = await call("POST", "/web/signin", body);
  $("signin-submit").disabled = false;
  $("signin-password").value = "";
  $("signin-token").value = "";
  if (r.status === 200) {
    $("signin-error").textContent = "";
    signedIn(r.body);
  } else {
    $("signin-error").textContent = r.body.message || `HTTP ${r.status}`;
  }
}

async function signout() {
  await call("POST", "/web/signout", {});
  signedOut();
}

document.addEventListener("DOMContentLoaded", async () => {
  $("signin-form").addEventListener("submit", signin);
  $("signout").addEventListener("click", signout);
  $("ask-form").addEventListener("submit", ask);
  $("feed-form").addEventListener("submit", (ev) => { ev.preventDefault(); follow(); });
  setInterval(tickCountdowns, 1000);
  const r = await call("GET", "/web/session");
  if (r.status === 200) signedIn(r.body);
  else signedOut();
});
