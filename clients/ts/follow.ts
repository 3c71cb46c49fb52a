// follow(): the live tail (GET /system/logs/stream) as an async iterator of
// typed entries, reconnecting and resuming by itself.
//
// Browsers' EventSource cannot send an Authorization header, so this reads
// the stream with fetch and parses Server-Sent Events itself.
//
//   for await (const entry of follow({ baseUrl, token, query: { category: "auth" } })) {
//     console.log(entry.seq, entry.message);
//   }

import type { operations, ProblemDetails, StreamEnd, SystemLog } from "../../gen/ts/valhalla.js";

/** The stream's filters and start, as the contract declares them. */
export type StreamQuery = NonNullable<operations["getSystemLogStream"]["parameters"]["query"]>;

/** One parsed Server-Sent Event. */
export interface RawEvent {
  /** The event's id (an entry's seq), when it has one. */
  id?: string;
  /** entry, overflow, shutdown or error ("message" when unnamed). */
  event: string;
  /** The data lines, joined by "\n". */
  data: string;
  /** The reconnection delay the server suggested, in ms, if it did. */
  retry?: number;
}

/** The typed events of the live tail. */
export type StreamEvent =
  | { event: "entry"; id: string; data: SystemLog }
  | { event: "overflow" | "shutdown"; data: StreamEnd }
  | { event: "error"; data: ProblemDetails };

/** Parses text/event-stream incrementally: push chunks, get whole events. */
export class EventStreamParser {
  private buffer = "";
  private id: string | undefined;
  private event = "";
  private data: string[] = [];
  private retry: number | undefined;

  /** Adds a chunk of the stream and returns the events it completed. */
  push(chunk: string): RawEvent[] {
    this.buffer += chunk;
    const out: RawEvent[] = [];
    for (;;) {
      const nl = this.buffer.search(/\r\n|\r|\n/);
      // A CR that ends the chunk may be the first half of a CRLF.
      if (nl < 0 || (nl === this.buffer.length - 1 && this.buffer[nl] === "\r")) {
        return out;
      }
      const line = this.buffer.slice(0, nl);
      const sep = this.buffer.startsWith("\r\n", nl) ? 2 : 1;
      this.buffer = this.buffer.slice(nl + sep);
      this.line(line, out);
    }
  }

  private line(line: string, out: RawEvent[]): void {
    if (line === "") {
      if (this.data.length > 0 || this.event !== "") {
        const ev: RawEvent = { event: this.event || "message", data: this.data.join("\n") };
        if (this.id !== undefined) ev.id = this.id;
        if (this.retry !== undefined) ev.retry = this.retry;
        out.push(ev);
      }
      this.id = undefined;
      this.event = "";
      this.data = [];
      return;
    }
    if (line.startsWith(":")) {
      return; // a comment: the heartbeat
    }
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "id":
        this.id = value;
        break;
      case "event":
        this.event = value;
        break;
      case "data":
        this.data.push(value);
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retry = Number(value);
        break;
    }
  }
}

/** Settings for {@link follow}. */
export interface FollowOptions {
  /** Where Valhalla serves, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** A token with the logs:read scope. */
  token?: string;
  /** Filters, and `after` to start after a seq (default: only new entries). */
  query?: StreamQuery;
  /** Aborting it ends the iteration. */
  signal?: AbortSignal;
  /** The fetch to use; defaults to the global fetch. */
  fetch?: typeof fetch;
  /** Told each time the stream is opened again, with the seq it resumes after. */
  onReconnect?: (after: number | undefined, reason: string) => void;
}

/** The server refused the stream for good (bad token, scope or filter). */
export class StreamRefusedError extends Error {
  constructor(
    readonly status: number,
    readonly problem: ProblemDetails | undefined,
  ) {
    super(`stream refused: ${status} ${problem?.detail ?? ""}`.trim());
  }
}

/** The query string of a stream request. */
function queryString(query: StreamQuery, after: number | undefined): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (key === "after" || value === undefined || value === null) continue;
    for (const v of Array.isArray(value) ? value : [value]) params.append(key, String(v));
  }
  if (after !== undefined) params.set("after", String(after));
  return params.toString();
}

/** Parses a raw event into a typed one; undefined for unknown events. */
export function typedEvent(raw: RawEvent): StreamEvent | undefined {
  switch (raw.event) {
    case "entry":
      return { event: "entry", id: raw.id ?? "", data: JSON.parse(raw.data) as SystemLog };
    case "overflow":
    case "shutdown":
      return { event: raw.event, data: JSON.parse(raw.data) as StreamEnd };
    case "error":
      return { event: "error", data: JSON.parse(raw.data) as ProblemDetails };
    default:
      return undefined;
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Follows the live tail: yields every matching entry once, in seq order,
 * until options.signal aborts (or the loop breaks). When the stream ends
 * (overflow, server shutdown, a dropped connection, a 503) it reconnects
 * after the server's retry hint, resuming after the last entry yielded.
 * It throws StreamRefusedError when the server refuses the request for good.
 */
export async function* follow(options: FollowOptions): AsyncGenerator<SystemLog, void, undefined> {
  const doFetch = options.fetch ?? fetch;
  const query = options.query ?? {};
  let after: number | undefined = query.after ?? undefined;
  let retry = 2000;
  let failures = 0;
  const headers: Record<string, string> = { Accept: "text/event-stream" };
  if (options.token !== undefined) headers["Authorization"] = `Bearer ${options.token}`;
  while (!options.signal?.aborted) {
    let reason = "the stream ended";
    try {
      const init: RequestInit = { headers };
      if (options.signal) init.signal = options.signal;
      const response = await doFetch(`${options.baseUrl}/system/logs/stream?${queryString(query, after)}`, init);
      if (response.status === 503) {
        const seconds = Number(response.headers.get("Retry-After"));
        if (Number.isFinite(seconds) && seconds > 0) retry = seconds * 1000;
        reason = `503 ${response.statusText}`;
        await response.body?.cancel();
      } else if (!response.ok) {
        let problem: ProblemDetails | undefined;
        try {
          problem = (await response.json()) as ProblemDetails;
        } catch {
          problem = undefined;
        }
        if (response.status >= 500) {
          reason = `${response.status} ${problem?.detail ?? ""}`;
        } else {
          throw new StreamRefusedError(response.status, problem);
        }
      } else if (response.body) {
        const parser = new EventStreamParser();
        const decoder = new TextDecoder();
        for await (const chunk of response.body) {
          for (const raw of parser.push(decoder.decode(chunk, { stream: true }))) {
            if (raw.retry !== undefined) retry = raw.retry;
            const ev = typedEvent(raw);
            if (ev?.event === "entry") {
              failures = 0;
              if (ev.data.seq !== null) after = ev.data.seq;
              yield ev.data;
            } else if (ev) {
              reason = `${ev.event}: ${ev.event === "error" ? ev.data.detail : ev.data.reason}`;
            }
          }
        }
      }
    } catch (err) {
      if (err instanceof StreamRefusedError) throw err;
      if (options.signal?.aborted) return;
      reason = err instanceof Error ? err.message : String(err);
    }
    if (options.signal?.aborted) return;
    options.onReconnect?.(after, reason);
    await sleep(Math.min(30_000, retry * 2 ** Math.min(failures, 4)), options.signal);
    failures++;
  }
}
