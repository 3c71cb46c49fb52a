// The log viewer at /ui/: a client of the JSON API like any other, typed by
// the types openapi-typescript generates from openapi.yaml (gen/ts) and
// calling it through openapi-fetch. The bearer token lives in
// sessionStorage, never in a URL; the URL carries the view (filters, page,
// open entry), so a view can be shared without the token.
//
// One entry's proof is checked in the browser (verify.ts, WebCrypto)
// against the verifier key the user pastes once (localStorage: it is
// public); Live follows GET /system/logs/stream with the current filters
// (follow() of the TypeScript client: fetch, since EventSource cannot send
// the token); Export downloads GET /system/logs/export through fetch.

import createClient, { type Middleware } from "openapi-fetch";
import type { paths, Check, FieldError, LogLevel, ProblemDetails, SystemLog, SystemLogList } from "../../gen/ts/valhalla.js";
import { follow, StreamRefusedError, type StreamQuery } from "../../clients/ts/follow.js";
import { entryFromJSON, parseVerifierKey, verifyEntry, VerifyError, type InclusionProof } from "./verify.js";

type ListQuery = NonNullable<paths["/system/logs"]["get"]["parameters"]["query"]>;

const TOKEN_KEY = "valhalla.token";
/** The ledger's verifier key (public), kept across visits. */
const LEDGER_KEY = "valhalla.ledgerKey";
const LEVELS: LogLevel[] = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];
/** The text filters of the listing, by query parameter, with their labels. */
const TEXT_FILTERS = [
  ["category", "Category"],
  ["correlation_id", "Correlation id"],
  ["trace_id", "Trace id"],
  ["user_id", "User id"],
] as const;
const LIMITS = [25, 50, 100, 200, 500];

let token = sessionStorage.getItem(TOKEN_KEY) ?? "";

const withToken: Middleware = {
  onRequest({ request }) {
    if (token !== "") {
      request.headers.set("Authorization", `Bearer ${token}`);
    }
    return request;
  },
};
const api = createClient<paths>({ baseUrl: window.location.origin });
api.use(withToken);

// ---- DOM helpers: every value goes in as text, never as HTML. ----

type Attrs = Record<string, string | boolean | undefined>;
type Child = Node | string | null | undefined | false;

function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c);
  }
  return el;
}

function byId<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`missing #${id}`);
  return el as T;
}

// ---- The view, as the URL carries it. ----

interface View {
  query: ListQuery;
  entry: string | null;
}

function readView(): View {
  const p = new URLSearchParams(window.location.search);
  const query: ListQuery = {};
  const levels = p.getAll("level").filter((l): l is LogLevel => (LEVELS as string[]).includes(l));
  if (levels.length > 0) query.level = levels;
  const min = p.get("min_level");
  if (min !== null && (LEVELS as string[]).includes(min)) query.min_level = min as LogLevel;
  for (const [key] of TEXT_FILTERS) {
    const v = p.get(key);
    if (v) query[key] = v;
  }
  const since = p.get("since");
  if (since) query.since = since;
  const until = p.get("until");
  if (until) query.until = until;
  const limit = Number(p.get("limit"));
  if (Number.isInteger(limit) && limit > 0) query.limit = limit;
  const cursor = p.get("cursor");
  if (cursor) query.cursor = cursor;
  return { query, entry: p.get("entry") };
}

function viewURL(v: View): string {
  const p = new URLSearchParams();
  const q = v.query;
  for (const l of q.level ?? []) p.append("level", l);
  if (q.min_level) p.set("min_level", q.min_level);
  for (const [key] of TEXT_FILTERS) {
    const value = q[key];
    if (value) p.set(key, value);
  }
  if (q.since) p.set("since", q.since);
  if (q.until) p.set("until", q.until);
  if (q.limit) p.set("limit", String(q.limit));
  if (q.cursor) p.set("cursor", q.cursor);
  if (v.entry) p.set("entry", v.entry);
  const s = p.toString();
  return window.location.pathname + (s ? `?${s}` : "");
}

/** The cursors of the pages before this one, newest last (history state). */
function previousCursors(): (string | null)[] {
  const s = history.state as { prev?: (string | null)[] } | null;
  return Array.isArray(s?.prev) ? s.prev : [];
}

function go(v: View, prev: (string | null)[] = previousCursors()): void {
  history.pushState({ prev }, "", viewURL(v));
  void render();
}

// ---- Formatting. ----

function localTime(iso: string): HTMLTimeElement {
  const d = new Date(iso);
  return h("time", { datetime: iso, title: `${d.toISOString()} (UTC)` }, d.toLocaleString(undefined, {
    year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
    fractionalSecondDigits: 3, timeZoneName: "short",
  }));
}

function levelBadge(level: LogLevel): HTMLSpanElement {
  return h("span", { class: `level level-${level.toLowerCase()}` }, level);
}

/** Converts an ISO instant to a datetime-local value in the viewer's zone. */
function toLocalInput(iso: string | undefined): string {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function fromLocalInput(v: string): string | undefined {
  if (!v) return undefined;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

// ---- Problems, as people read them. ----

function isProblem(v: unknown): v is ProblemDetails {
  return typeof v === "object" && v !== null && "title" in v && "status" in v && "type" in v;
}

function location(e: FieldError): string {
  if (e.pointer !== undefined) return e.pointer === "" ? "body" : `body ${e.pointer}`;
  if (e.parameter !== undefined) return `parameter ${e.parameter}`;
  if (e.header !== undefined) return `header ${e.header}`;
  return "request";
}

function showProblem(where: HTMLElement, err: unknown, response?: Response): void {
  where.replaceChildren();
  if (!isProblem(err)) {
    const status = response ? `${response.status} ${response.statusText}` : "no response";
    where.append(h("section", { class: "problem", role: "alert" },
      h("h2", {}, "The request failed"),
      h("p", {}, err instanceof Error ? `${err.message} (${status})` : status)));
    return;
  }
  const typeURL = new URL(err.type, response?.url ?? window.location.href).href;
  const errors = err.errors ?? [];
  where.append(h("section", { class: "problem", role: "alert", "aria-labelledby": "problem-title" },
    h("h2", { id: "problem-title" }, `${err.status} ${err.title}`),
    h("p", { class: "problem-detail" }, err.detail),
    errors.length > 0 && h("ul", { class: "problem-errors" },
      ...errors.map((e) => h("li", {}, h("strong", {}, location(e)), `: ${e.detail}`))),
    h("p", { class: "problem-ids" },
      "Request id to quote: ", h("code", { class: "problem-request-id" }, err.correlation_id),
      err.trace_id ? " · trace " : "", err.trace_id ? h("code", {}, err.trace_id) : null),
    h("p", {}, h("a", { href: typeURL, class: "problem-type" }, "What this problem means and what to do"))));
}

/** Shows a failed call's problem in box; a refused token signs out to the form. */
function showFailure(box: HTMLElement, err: unknown, response: Response): void {
  if (response.status === 401) {
    const above = h("div", { id: "problem" });
    showProblem(above, err, response);
    renderSignIn(above);
    return;
  }
  showProblem(box, err, response);
}

// ---- Health strip. ----

async function renderHealth(): Promise<void> {
  const strip = byId("health");
  const items: HTMLElement[] = [];
  try {
    const ready = await api.GET("/system-health/ready");
    const checks: Check[] = ready.data?.checks ?? (ready.error as { checks?: Check[] } | undefined)?.checks ?? [];
    items.push(h("span", { class: `health-item ${ready.data ? "ok" : "fail"}` },
      ready.data ? "Ready" : "Not ready",
      checks.length > 0 ? `: ${checks.map((c) => `${c.name} ${c.status}`).join(", ")}` : ""));
    const health = await api.GET("/system-health");
    const all: Check[] = health.data?.checks ?? (health.error as { checks?: Check[] } | undefined)?.checks ?? [];
    const ledger = all.find((c) => c.name.startsWith("ledger"));
    if (ledger) {
      items.push(h("span", { class: `health-item ${ledger.status === "ok" ? "ok" : "fail"}` },
        `Ledger ${ledger.status}`, ledger.error ? `: ${ledger.error}` : ""));
    }
    if (health.data) items.push(h("span", { class: "health-item" }, `Version ${health.data.version}`));
  } catch (e) {
    items.push(h("span", { class: "health-item fail" }, `Health unknown: ${(e as Error).message}`));
  }
  strip.replaceChildren(...items);
}

// ---- Sign in and out. ----

function renderSignIn(message?: Node): void {
  byId("session").replaceChildren();
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true, spellcheck: "false", placeholder: "vhl_…" });
  const form = h("form", { id: "sign-in", class: "sign-in" },
    h("h2", {}, "Sign in"),
    h("p", {}, "Paste a token that holds the logs:read scope. It is kept in this tab only and sent as a bearer token; the address bar never shows it."),
    h("label", { for: "token" }, "Token"), input,
    h("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    token = input.value.trim();
    sessionStorage.setItem(TOKEN_KEY, token);
    void render();
  });
  byId("main").replaceChildren(...(message ? [message] : []), form);
  input.focus();
}

function renderSession(): void {
  const out = h("button", { type: "button", id: "sign-out" }, "Sign out");
  out.addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    token = "";
    live.stop();
    byId("live").replaceChildren();
    renderSignIn();
  });
  byId("session").replaceChildren(out);
}

// ---- Filters. ----

function filterForm(q: ListQuery): HTMLFormElement {
  const levels = h("fieldset", { class: "levels" }, h("legend", {}, "Levels"),
    ...LEVELS.map((l) => h("label", { class: `check level-${l.toLowerCase()}` },
      h("input", { type: "checkbox", name: "level", value: l, checked: (q.level ?? []).includes(l) }), ` ${l}`)));
  const min = h("select", { id: "f-min_level", name: "min_level" }, h("option", { value: "" }, "any"),
    ...LEVELS.map((l) => h("option", { value: l, selected: q.min_level === l }, l)));
  const limit = h("select", { id: "f-limit", name: "limit" },
    ...LIMITS.map((n) => h("option", { value: String(n), selected: (q.limit ?? 50) === n }, String(n))));
  const field = (id: string, label: string, control: HTMLElement) => h("div", { class: "field" }, h("label", { for: id }, label), control);
  const form = h("form", { id: "filters", class: "filters", "aria-label": "Filters" },
    levels,
    field("f-min_level", "At least", min),
    ...TEXT_FILTERS.map(([key, label]) => field(`f-${key}`, label,
      h("input", { id: `f-${key}`, name: key, type: "text", value: q[key] ?? "", autocomplete: "off", spellcheck: "false" }))),
    field("f-since", "Since (your time)", h("input", { id: "f-since", name: "since", type: "datetime-local", step: "1", value: toLocalInput(q.since) })),
    field("f-until", "Until (your time)", h("input", { id: "f-until", name: "until", type: "datetime-local", step: "1", value: toLocalInput(q.until) })),
    field("f-limit", "Per page", limit),
    h("div", { class: "actions" },
      h("button", { type: "submit", id: "apply" }, "Apply filters"),
      h("button", { type: "button", id: "clear" }, "Clear")));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    const next: ListQuery = {};
    const lv = data.getAll("level").map(String).filter((l): l is LogLevel => (LEVELS as string[]).includes(l));
    if (lv.length > 0) next.level = lv;
    const m = String(data.get("min_level") ?? "");
    if (m) next.min_level = m as LogLevel;
    for (const [key] of TEXT_FILTERS) {
      const v = String(data.get(key) ?? "").trim();
      if (v) next[key] = v;
    }
    const since = fromLocalInput(String(data.get("since") ?? ""));
    if (since) next.since = since;
    const until = fromLocalInput(String(data.get("until") ?? ""));
    if (until) next.until = until;
    const n = Number(data.get("limit"));
    if (n !== 50) next.limit = n;
    go({ query: next, entry: null }, []);
  });
  form.querySelector("#clear")?.addEventListener("click", () => go({ query: {}, entry: null }, []));
  return form;
}

// ---- The list. ----

function filterLink(key: "correlation_id" | "trace_id" | "user_id", value: string, label: string): HTMLAnchorElement {
  const a = h("a", { href: viewURL({ query: { [key]: value }, entry: null }), class: "related" }, label);
  a.addEventListener("click", (ev) => {
    ev.preventDefault();
    go({ query: { [key]: value }, entry: null }, []);
  });
  return a;
}

function entryLink(v: View, e: SystemLog): HTMLAnchorElement {
  const target: View = { query: v.query, entry: e.id };
  const a = h("a", { href: viewURL(target), class: "open-entry" }, e.message || "(no message)");
  a.addEventListener("click", (ev) => {
    ev.preventDefault();
    go(target);
  });
  return a;
}

function entryRow(v: View, e: SystemLog): HTMLTableRowElement {
  return h("tr", { class: `entry level-${e.level.toLowerCase()}`, "data-id": e.id },
    h("td", { class: "c-time" }, localTime(e.timestamp)),
    h("td", { class: "c-level" }, levelBadge(e.level)),
    h("td", { class: "c-category" }, e.category),
    h("td", { class: "c-message" }, entryLink(v, e)),
    h("td", { class: "c-user" }, e.user_id ?? ""));
}

async function renderList(v: View): Promise<void> {
  const main = byId("main");
  const status = h("p", { id: "list-status", role: "status", "aria-live": "polite" }, "Loading…");
  const problemBox = h("div", { id: "problem" });
  main.replaceChildren(filterForm(v.query), problemBox, status);
  const { data, error, response } = await api.GET("/system/logs", { params: { query: v.query } });
  if (error !== undefined || data === undefined) {
    status.textContent = "";
    showFailure(problemBox, error, response);
    return;
  }
  const page: SystemLogList = data;
  status.textContent = page.items.length === 0 ? "No entries match these filters." :
    `${page.items.length} entries, newest first${v.query.cursor ? " (an older page)" : ""}.`;
  const rows = page.items.map((e) => entryRow(v, e));
  const table = h("table", { class: "entries", id: "entries" },
    h("caption", { class: "visually-hidden" }, "Log entries, newest first"),
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, "Time"), h("th", { scope: "col" }, "Level"), h("th", { scope: "col" }, "Category"),
      h("th", { scope: "col" }, "Message"), h("th", { scope: "col" }, "User"))),
    h("tbody", {}, ...rows));
  const prev = previousCursors();
  const newer = h("button", { type: "button", id: "newer", disabled: !v.query.cursor }, "← Newer");
  newer.addEventListener("click", () => {
    const stack = previousCursors().slice();
    const cursor = stack.pop() ?? null;
    const q = { ...v.query };
    if (cursor) q.cursor = cursor; else delete q.cursor;
    go({ query: q, entry: null }, stack);
  });
  const older = h("button", { type: "button", id: "older", disabled: !page.next_cursor }, "Older →");
  older.addEventListener("click", () => {
    if (!page.next_cursor) return;
    go({ query: { ...v.query, cursor: page.next_cursor }, entry: null }, [...prev, v.query.cursor ?? null]);
  });
  main.append(table, h("nav", { class: "pager", "aria-label": "Pages" }, newer, older));
  main.append(mountExport(v, problemBox));
  live.showing(v.query.cursor ? null : v);
}

// ---- One entry. ----

async function renderEntry(v: View, id: string): Promise<void> {
  const main = byId("main");
  const back = h("a", { href: viewURL({ query: v.query, entry: null }), id: "back" }, "← Back to the list");
  back.addEventListener("click", (ev) => {
    ev.preventDefault();
    go({ query: v.query, entry: null });
  });
  const problemBox = h("div", { id: "problem" });
  main.replaceChildren(h("p", {}, back), problemBox);
  const { data, error, response } = await api.GET("/system/logs/{id}", { params: { path: { id } } });
  if (error !== undefined || data === undefined) {
    showFailure(problemBox, error, response);
    return;
  }
  const e = data as SystemLog & { seq?: number };
  const row = (label: string, ...value: Child[]) => [h("dt", {}, label), h("dd", {}, ...value)];
  const related: Child[] = [
    filterLink("correlation_id", e.correlation_id, "same correlation id"),
    e.trace_id ? filterLink("trace_id", e.trace_id, "same trace") : null,
    e.user_id ? filterLink("user_id", e.user_id, "same user") : null,
  ];
  main.append(h("article", { class: "entry-detail", id: "entry", "aria-labelledby": "entry-message" },
    h("h2", { id: "entry-message", tabindex: "-1" }, levelBadge(e.level), " ", e.message),
    h("dl", { class: "fields" },
      ...row("Id", h("code", { id: "entry-id" }, e.id)),
      ...(e.seq !== undefined ? row("Sequence", h("code", { id: "entry-seq" }, String(e.seq))) : []),
      ...row("Time", localTime(e.timestamp)),
      ...row("Level", levelBadge(e.level)),
      ...row("Category", e.category),
      ...row("Message", e.message),
      ...row("Correlation id", h("code", {}, e.correlation_id), " ", related[0]),
      ...row("Trace id", e.trace_id ? h("code", {}, e.trace_id) : "none", " ", related[1]),
      ...row("User", e.user_id ?? "none", " ", related[2]),
      ...row("Written by", e.actor),
      ...row("Context", h("pre", { id: "entry-context" }, JSON.stringify(e.context, null, 2)))),
    mountProof(e)));
  byId<HTMLHeadingElement>("entry-message").focus();
}

// ---- Proof: the entry's seal, verified in the browser. ----

function savedLedgerKey(): string {
  return localStorage.getItem(LEDGER_KEY) ?? "";
}

/**
 * The proof section of one entry: with the verifier key the user pasted
 * once, it fetches the entry as stored, its inclusion proof and the latest
 * checkpoint, and checks them in the browser (verify.ts).
 */
function mountProof(entry: SystemLog): HTMLElement {
  const section = h("section", { class: "proof", id: "proof", "aria-labelledby": "proof-title" },
    h("h3", { id: "proof-title" }, "Seal"));
  const status = h("p", { id: "proof-status", role: "status", "aria-live": "polite" });
  const problemBox = h("div", { class: "proof-problem" });
  let timer: number | undefined;

  const keyForm = (): void => {
    const input = h("input", { id: "ledger-key", name: "ledger-key", type: "text", autocomplete: "off", spellcheck: "false",
      required: true, placeholder: "valhalla-ledger-…+…+…", value: savedLedgerKey() });
    const form = h("form", { class: "key-form", id: "key-form" },
      h("label", { for: "ledger-key" }, "Ledger verifier key (what ", h("code", {}, "valhalla ledger key"), " prints; public, kept in this browser)"),
      input, h("button", { type: "submit", id: "save-key" }, "Save key and verify"));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const text = input.value.trim();
      try {
        await parseVerifierKey(text);
      } catch (e) {
        setStatus("fail", `This is not a verifier key: ${(e as Error).message}`);
        return;
      }
      localStorage.setItem(LEDGER_KEY, text);
      show();
    });
    section.replaceChildren(section.firstChild as Node, form, status, problemBox);
  };

  const setStatus = (cls: "ok" | "fail" | "wait", text: string, kind?: string): void => {
    status.className = `proof-${cls}`;
    if (kind) status.dataset["kind"] = kind; else delete status.dataset["kind"];
    status.textContent = text;
  };

  const show = (): void => {
    const again = h("button", { type: "button", id: "verify" }, "Verify again");
    again.addEventListener("click", () => void run());
    const change = h("button", { type: "button", id: "change-key" }, "Change key");
    change.addEventListener("click", () => keyForm());
    section.replaceChildren(section.firstChild as Node, status, problemBox, h("div", { class: "actions" }, again, change));
    void run();
  };

  const run = async (): Promise<void> => {
    window.clearTimeout(timer);
    problemBox.replaceChildren();
    const keyText = savedLedgerKey();
    setStatus("wait", "Verifying…");
    let key;
    try {
      key = await parseVerifierKey(keyText);
    } catch (e) {
      setStatus("fail", `The saved key is not a verifier key: ${(e as Error).message}`, "malformed");
      return;
    }
    const id = entry.id;
    const stored = await api.GET("/system/logs/{id}", { params: { path: { id } }, parseAs: "text" });
    if (stored.error !== undefined || stored.data === undefined) {
      setStatus("fail", "Could not read the entry.");
      showProblem(problemBox, stored.error, stored.response);
      return;
    }
    const proof = await api.GET("/system/logs/{id}/proof", { params: { path: { id } } });
    if (proof.error !== undefined || proof.data === undefined) {
      const retry = Number(proof.response.headers.get("Retry-After"));
      if (proof.response.status === 404 && retry > 0) {
        setStatus("wait", `Not sealed yet: checking again in ${retry} s.`);
        timer = window.setTimeout(() => {
          if (section.isConnected) void run();
        }, retry * 1000);
        return;
      }
      setStatus("fail", "Could not fetch the inclusion proof.");
      showProblem(problemBox, proof.error, proof.response);
      return;
    }
    const latest = await api.GET("/ledger/checkpoint", { parseAs: "text" });
    if (latest.error !== undefined || latest.data === undefined) {
      setStatus("fail", "Could not fetch the signed checkpoint.");
      showProblem(problemBox, latest.error, latest.response);
      return;
    }
    try {
      const p = proof.data;
      const ok = await verifyEntry(entryFromJSON(stored.data), p as InclusionProof, key, latest.data);
      const signed = new Date(p.checkpoint_signed_at);
      setStatus("ok", `Sealed in checkpoint ${ok.size} of ${signed.toLocaleString()} (entry ${ok.seq} of ${ok.size}), ` +
        `verified with ${key.name}: the entry hashes to its sealed leaf, the proof leads to the signed root ${ok.root}.`);
    } catch (e) {
      if (e instanceof VerifyError) {
        setStatus("fail", `Verification failed (${e.kind}): ${e.message}.`, e.kind);
      } else {
        setStatus("fail", `Verification failed: ${(e as Error).message}`, "malformed");
      }
    }
  };

  if (savedLedgerKey() === "") keyForm(); else show();
  return section;
}

// ---- Live: follow the stream with the current filters. ----

/** The stream's filters from the listing's query (no page, no size). */
function streamQuery(q: ListQuery): StreamQuery {
  const { limit: _limit, cursor: _cursor, ...rest } = q;
  return rest;
}

/**
 * The Live control: follows GET /system/logs/stream with the current
 * filters (restarting when they change), puts arriving entries at the top
 * of the newest page, holds them while paused (or while another page is
 * shown) with their count, and resumes after a dropped connection from the
 * last seq it received (follow() reconnects with after=<seq>).
 */
class LiveFollow {
  private on = false;
  private paused = false;
  private abort: AbortController | null = null;
  private filters = "";
  private query: ListQuery = {};
  private pending: SystemLog[] = [];
  private view: View | null = null;
  private received = 0;
  private readonly toggle = h("button", { type: "button", id: "live-toggle", "aria-pressed": "false" }, "Follow live");
  private readonly pause = h("button", { type: "button", id: "live-pause", hidden: true }, "Pause");
  private readonly status = h("span", { id: "live-status", role: "status", "aria-live": "polite" });
  private readonly box = h("div", { class: "live-bar" }, this.toggle, this.pause, this.status);

  constructor() {
    this.toggle.addEventListener("click", () => (this.on ? this.stop() : this.start()));
    this.pause.addEventListener("click", () => {
      this.paused = !this.paused;
      if (!this.paused) this.flush();
      this.update();
    });
  }

  /** Puts the control in place and follows q's filters from now on. */
  mount(where: HTMLElement, q: ListQuery): void {
    if (!where.contains(this.box)) where.replaceChildren(this.box);
    this.query = q;
    const f = JSON.stringify(streamQuery(q));
    if (f !== this.filters) {
      this.filters = f;
      this.pending = [];
      if (this.on) this.restart();
    }
    this.update();
  }

  /** The list now shown: v when it is the newest page, else null. */
  showing(v: View | null): void {
    this.view = v;
    // Entries that arrived while the page was read may or may not be on
    // it: flush puts each at the top once (a row of the same id goes).
    if (v) this.flush();
    this.update();
  }

  start(): void {
    this.on = true;
    this.paused = false;
    this.received = 0;
    this.restart();
  }

  stop(): void {
    this.on = false;
    this.abort?.abort();
    this.abort = null;
    this.pending = [];
    this.update();
  }

  private restart(): void {
    this.abort?.abort();
    const abort = new AbortController();
    this.abort = abort;
    this.update("Connecting…");
    void (async () => {
      try {
        // Start after the latest signed tree, so that nothing sealed from
        // the click on is missed, however long the stream takes to open.
        const query = streamQuery(this.query);
        const cp = await api.GET("/ledger/checkpoint", { parseAs: "text", signal: abort.signal });
        const size = Number((cp.data ?? "").split("\n")[1]);
        if (abort.signal.aborted) return;
        if (cp.data !== undefined && Number.isSafeInteger(size)) {
          query.after = size;
          this.status.dataset["after"] = String(size);
        }
        this.update("Following…");
        for await (const e of follow({
          baseUrl: window.location.origin, token, query, signal: abort.signal,
          onReconnect: (after, reason) => {
            if (!abort.signal.aborted) this.update(`Reconnecting after ${after ?? "the start"} (${reason})…`);
          },
        })) {
          if (abort.signal.aborted) return;
          this.received++;
          this.pending.push(e);
          if (!this.paused) this.flush();
          this.update("Following…");
        }
      } catch (err) {
        if (abort.signal.aborted) return;
        this.on = false;
        this.update();
        if (err instanceof StreamRefusedError) {
          const box = byId("problem");
          showProblem(box, err.problem, undefined);
        } else {
          this.status.textContent = `Live stopped: ${(err as Error).message}`;
        }
      }
    })();
  }

  /** Shows the held entries at the top of the newest page, if it is shown. */
  private flush(): void {
    const tbody = document.querySelector("#entries tbody");
    if (this.paused || this.view === null || tbody === null) return;
    for (const e of this.pending) {
      const row = entryRow(this.view, e);
      row.classList.add("live-new");
      tbody.querySelector(`tr[data-id="${CSS.escape(e.id)}"]`)?.remove();
      tbody.prepend(row);
    }
    this.pending = [];
  }

  private update(text?: string): void {
    this.toggle.setAttribute("aria-pressed", String(this.on));
    this.toggle.textContent = this.on ? "Stop following" : "Follow live";
    this.pause.hidden = !this.on;
    this.pause.textContent = this.paused ? "Resume" : "Pause";
    this.pause.setAttribute("aria-pressed", String(this.paused));
    if (!this.on) {
      this.status.textContent = "";
      return;
    }
    const held = this.pending.length;
    const base = text ?? (this.status.dataset["base"] || "Following…");
    this.status.dataset["base"] = base;
    this.status.replaceChildren(base,
      held > 0 ? h("span", { id: "live-pending", class: "live-pending" },
        ` ${held} new ${held === 1 ? "entry" : "entries"} ${this.paused ? "while paused" : "not shown on this page"}`) : "");
  }
}

const live = new LiveFollow();

// ---- Export: the current filter as NDJSON or CSV. ----

/** The file name a Content-Disposition header gives, if any. */
function dispositionName(header: string | null): string | null {
  const m = /filename="?([^";]+)"?/.exec(header ?? "");
  return m?.[1] ?? null;
}

/** Download of the current filter (every page) as NDJSON or CSV. */
function mountExport(v: View, problemBox: HTMLElement): HTMLElement {
  const format = h("select", { id: "export-format", name: "format" },
    h("option", { value: "ndjson" }, "NDJSON (with the signed checkpoint)"), h("option", { value: "csv" }, "CSV"));
  const button = h("button", { type: "button", id: "export" }, "Download");
  const status = h("span", { id: "export-status", role: "status", "aria-live": "polite" });
  button.addEventListener("click", async () => {
    button.disabled = true;
    status.textContent = "Exporting…";
    const f = format.value === "csv" ? "csv" : "ndjson";
    const { data, error, response } = await api.GET("/system/logs/export", {
      params: { query: { ...streamQuery(v.query), format: f } }, parseAs: "blob",
    });
    button.disabled = false;
    if (error !== undefined || data === undefined) {
      status.textContent = "The export failed.";
      showProblem(problemBox, error, response);
      return;
    }
    const blob = data as Blob;
    if (f === "ndjson") {
      const text = await blob.text();
      const last = text.trimEnd().split("\n").pop() ?? "";
      let end: { trailer?: { count: number; tree_size: number }; error?: ProblemDetails } = {};
      try {
        end = JSON.parse(last) as typeof end;
      } catch {
        end = {};
      }
      if (end.trailer) {
        status.textContent = `${end.trailer.count} entries, sealed in checkpoint ${end.trailer.tree_size}.`;
      } else {
        status.textContent = "The export is incomplete (it does not end with its trailer): do not use it as a whole.";
        if (end.error) showProblem(problemBox, end.error, response);
      }
    } else {
      status.textContent = "Downloaded.";
    }
    const url = URL.createObjectURL(blob);
    const a = h("a", { href: url, download: dispositionName(response.headers.get("Content-Disposition")) ?? `valhalla-export.${f}` });
    document.body.append(a);
    a.click();
    a.remove();
    window.setTimeout(() => URL.revokeObjectURL(url), 60_000);
  });
  return h("section", { class: "export", "aria-label": "Export" },
    h("label", { for: "export-format" }, "Export these filters (every page, oldest first) as"), format, button, status);
}

// ---- Entry point. ----

async function render(): Promise<void> {
  void renderHealth();
  const v = readView();
  if (token === "") {
    renderSignIn();
    return;
  }
  renderSession();
  live.mount(byId("live"), v.query);
  live.showing(null);
  if (v.entry) {
    await renderEntry(v, v.entry);
  } else {
    await renderList(v);
  }
}

window.addEventListener("popstate", () => void render());
void render();
