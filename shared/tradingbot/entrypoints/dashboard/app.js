// The operator's dashboard: reads only the operator API (/api/...), with the operator token the
// person enters (kept in this tab's sessionStorage; "#token=..." in the address works too and is
// never sent to the server). No build step, no third-party code.
"use strict";

const $ = (id) => document.getElementById(id);
// the API sits beside the page: "" locally, the stage ("/prod") behind API Gateway
const BASE = location.pathname.replace(/\/dashboard(\/.*)?$/, "");
const state = { token: null, account: null, timer: null };

function setError(message) {
  const el = $("error");
  el.hidden = !message;
  el.textContent = message || "";
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${state.token}`, ...(options.headers || {}) };
  if (options.body) headers["Content-Type"] = "application/json";
  const response = await fetch(`${BASE}/api${path}`, { ...options, headers });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(`${response.status}: ${body.message || body.error || response.statusText}`);
  return body;
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "-" : String(text);
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function fill(tableId, items, columns) {
  const body = $(tableId).querySelector("tbody");
  body.replaceChildren();
  for (const item of items) {
    const tr = document.createElement("tr");
    for (const [key, cls] of columns) {
      const value = typeof key === "function" ? key(item) : item[key];
      cell(tr, value, typeof cls === "function" ? cls(item) : cls);
    }
    body.appendChild(tr);
  }
  if (!items.length) {
    const tr = document.createElement("tr");
    cell(tr, "none").colSpan = columns.length;
    body.appendChild(tr);
  }
}

const sign = (v) => (v === null || v === undefined ? "num" : Number(v) >= 0 ? "num pos" : "num neg");
const round = (v, d = 2) => (v === null || v === undefined ? null : Number(v).toFixed(d));

function drawEquity(points) {
  const svg = $("equity");
  svg.replaceChildren();
  if (points.length < 2) return;
  const ys = points.map((p) => Number(p.equity));
  const lo = Math.min(...ys), hi = Math.max(...ys), span = hi - lo || 1;
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", ys.map((y, i) => `${(i / (ys.length - 1)) * 600},${150 - ((y - lo) / span) * 140}`).join(" "));
  svg.appendChild(line);
}

async function refresh() {
  if (!state.token || !state.account) return;
  const a = encodeURIComponent(state.account);
  try {
    const [pos, eq, dec, alerts, feed, sw] = await Promise.all([
      api(`/accounts/${a}/positions`), api(`/accounts/${a}/equity`), api(`/accounts/${a}/decisions?today=true&limit=50`),
      api(`/accounts/${a}/alerts?limit=10`), api("/feed"), api(`/accounts/${a}/kill-switch`),
    ]);
    fill("positions", pos.items, [["ticker"], ["side"], ["quantity", "num"], [(p) => round(p.entry_price), "num"],
      [(p) => round(p.mark_price), "num"], [(p) => round(p.unrealized_pnl), (p) => sign(p.unrealized_pnl)],
      [(p) => round(p.stop_loss), "num"], [(p) => round(p.take_profit), "num"]]);
    $("upnl").textContent = `open PnL ${round(pos.unrealized_pnl)} USDT`;
    drawEquity(eq.points);
    $("equity-basis").textContent = `${eq.basis}; ${eq.points.length} fills`;
    fill("decisions", dec.items, [["id"], ["strategy"], [(d) => `${d.alert_action} ${d.symbol}`], ["outcome"],
      [(d) => (d.rejecting_rule ? `${d.rejecting_rule}: ${d.reason}` : d.reason)]]);
    fill("alerts", alerts.items, [["id"], [(x) => x.received_at.slice(0, 19).replace("T", " ")], ["status"], ["reason"]]);
    const mode = feed.market ? feed.market.mode : "unknown";
    $("feed-state").textContent = `${feed.healthy ? "healthy" : "STALE"} · market: ${mode} · redis ${feed.redis ? "up" : "down"}`;
    fill("feed", feed.symbols, [["ticker"], [(s) => round(s.price), "num"],
      [(s) => (s.age_ms === null ? "no price" : `${(s.age_ms / 1000).toFixed(1)} s`), "num"]]);
    const account = sw.accounts[0];
    const el = $("switch-state");
    el.textContent = account.engaged ? `ENGAGED: ${account.reason}` : "released: orders allowed";
    el.className = account.engaged ? "engaged" : "released";
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    setError(null);
  } catch (err) {
    setError(err.message);
  }
}

async function toggle(engage) {
  const a = encodeURIComponent(state.account);
  try {
    if (engage) await api(`/accounts/${a}/kill-switch`, { method: "POST", body: JSON.stringify({ reason: "dashboard" }) });
    else await api(`/accounts/${a}/kill-switch`, { method: "DELETE" });
  } catch (err) {
    setError(err.message);
  }
  await refresh();
}

async function start(token) {
  state.token = token;
  sessionStorage.setItem("tb-operator-token", token);
  try {
    const me = await api("/me");
    $("who").textContent = `operator ${me.operator}`;
    const select = $("account");
    select.replaceChildren(...me.accounts.map((name) => new Option(name, name)));
    state.account = me.accounts[0] || null;
    if (!state.account) setError("this operator owns no account (tradingbot operators assign)");
  } catch (err) {
    setError(err.message);
    return;
  }
  await refresh();
  clearInterval(state.timer);
  state.timer = setInterval(refresh, 5000);
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", (e) => { e.preventDefault(); start($("token").value.trim()); });
  $("account").addEventListener("change", (e) => { state.account = e.target.value; refresh(); });
  $("kill").addEventListener("click", () => toggle(true));
  $("resume").addEventListener("click", () => toggle(false));
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) history.replaceState(null, "", location.pathname);
  const token = fromHash || sessionStorage.getItem("tb-operator-token");
  if (token) start(token);
});
