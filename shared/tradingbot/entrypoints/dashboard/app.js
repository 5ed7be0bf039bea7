// The operator's dashboard: reads only the operator API (/api/...). Under `serve` with the operator
// token the person enters (kept in this tab's sessionStorage; "#token=..." in the address works too
// and is never sent to the server). On AWS (dashboard/config.json says "cognito") it signs in at the
// operator user pool's managed login with the authorization code grant and PKCE, and sends the ID
// token (API Gateway's user-pool authorizer takes it): see signIn / redeem. No build step, no
// third-party code.
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

// ---------------------------------------------------------------- sign-in on AWS (Cognito, PKCE)
// Amazon Cognito's documented flow for a public client (no secret):
// https://docs.aws.amazon.com/cognito/latest/developerguide/using-pkce-in-authorization-code.html
// GET {login}/oauth2/authorize?response_type=code&client_id&redirect_uri&scope&state&code_challenge
// &code_challenge_method=S256 (the only method Cognito supports), then the browser comes back to
// redirect_uri with ?code&state; POST {login}/oauth2/token (application/x-www-form-urlencoded:
// grant_type=authorization_code, client_id, code, redirect_uri, code_verifier) answers id_token,
// access_token, refresh_token and expires_in; a code is redeemed once.
// https://docs.aws.amazon.com/cognito/latest/developerguide/authorization-endpoint.html
// https://docs.aws.amazon.com/cognito/latest/developerguide/token-endpoint.html

const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
  .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const redirectUri = () => `${location.origin}${location.pathname}`;

async function signIn(config) {
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));  // 43 unreserved characters
  const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  const nonce = b64url(crypto.getRandomValues(new Uint8Array(16)));
  sessionStorage.setItem("tb-pkce", JSON.stringify({ verifier, state: nonce }));
  const query = new URLSearchParams({
    response_type: "code", client_id: config.client_id, redirect_uri: redirectUri(), scope: config.scope,
    state: nonce, code_challenge: challenge, code_challenge_method: "S256",
  });
  location.assign(`${config.login_url}/oauth2/authorize?${query}`);
}

async function redeem(config, params) {
  const pending = JSON.parse(sessionStorage.getItem("tb-pkce") || "null");
  sessionStorage.removeItem("tb-pkce");
  history.replaceState(null, "", location.pathname);  // the code leaves the address bar either way
  if (!pending || params.get("state") !== pending.state) throw new Error("sign-in: the state does not match this tab's; sign in again");
  const response = await fetch(`${config.login_url}/oauth2/token`, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code", client_id: config.client_id, code: params.get("code"),
      redirect_uri: redirectUri(), code_verifier: pending.verifier,
    }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok || !body.id_token) throw new Error(`sign-in: ${response.status} ${body.error || "no id_token"}`);
  return body.id_token;
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

document.addEventListener("DOMContentLoaded", async () => {
  $("account").addEventListener("change", (e) => { state.account = e.target.value; refresh(); });
  $("kill").addEventListener("click", () => toggle(true));
  $("resume").addEventListener("click", () => toggle(false));
  const config = await fetch(`${BASE}/dashboard/config.json`).then((r) => r.json()).catch(() => ({ auth: "token" }));
  if (config.auth === "cognito") {
    $("login").hidden = true;
    $("signin").hidden = false;
    $("signin").addEventListener("click", () => signIn(config));
    const params = new URLSearchParams(location.search);
    if (params.get("error")) setError(`sign-in refused: ${params.get("error_description") || params.get("error")}`);
    try {
      const token = params.get("code") ? await redeem(config, params) : sessionStorage.getItem("tb-operator-token");
      if (token) start(token);
    } catch (err) {
      setError(err.message);
    }
    return;
  }
  $("login").addEventListener("submit", (e) => { e.preventDefault(); start($("token").value.trim()); });
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) history.replaceState(null, "", location.pathname);
  const token = fromHash || sessionStorage.getItem("tb-operator-token");
  if (token) start(token);
});
