// End-to-end tests of the TypeScript client against a live Valhalla at
// VALHALLA_URL with a token holding every scope in VALHALLA_TOKEN
// (scripts/with-server.sh starts one and sets both):
//
//   npm run gen:ts && npm run build:ts && scripts/with-server.sh npm run test:ts
//
// Each test writes to its own category, so the tests are independent of each
// other and of whatever else the server holds.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, test } from "node:test";

import {
  createValhallaClient,
  problemOf,
  type ProblemDetails,
  type SystemLog,
  type SystemLogCreate,
  type ValhallaClient,
} from "./valhalla.js";

const baseUrl = process.env["VALHALLA_URL"];
if (!baseUrl) {
  throw new Error("VALHALLA_URL is not set: run the tests through scripts/with-server.sh");
}

const token = process.env["VALHALLA_TOKEN"];
if (!token) {
  throw new Error("VALHALLA_TOKEN is not set: run the tests through scripts/with-server.sh");
}

const api = createValhallaClient({ baseUrl, token });

const uuidV7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const levels = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] as const;

/** A category no other test or run uses. */
function uniqueCategory(name: string): string {
  return `ts-${name}-${randomUUID().slice(0, 8)}`;
}

/** A request id the server keeps as it is (1–128 of [A-Za-z0-9._:-]). */
function uniqueRequestId(name: string): string {
  return `ts-${name}-${randomUUID()}`;
}

/** Every entry in a category, walking all pages of `limit` entries. */
async function listCategory(client: ValhallaClient, category: string, limit = 500): Promise<SystemLog[]> {
  const items: SystemLog[] = [];
  let cursor: string | undefined;
  for (;;) {
    const { data, error } = await client.GET("/system/logs", {
      params: { query: { category, limit, ...(cursor === undefined ? {} : { cursor }) } },
    });
    assert.equal(error, undefined);
    assert.ok(data);
    items.push(...data.items);
    if (data.next_cursor === null) {
      return items;
    }
    cursor = data.next_cursor;
  }
}

/**
 * An RFC 3339 timestamp as nanoseconds since the epoch, so that timestamps
 * with different numbers of fractional digits compare correctly.
 */
// assertSameEntry: got is the stored entry written as want, which the
// sequencer may have sealed since (its seq and leaf_hash set), never changed.
function assertSameEntry(got: SystemLog | undefined, want: SystemLog): void {
  assert.ok(got);
  if (want.seq === null && got.seq !== null) {
    assert.ok(Number.isInteger(got.seq) && got.seq >= 1, `seq ${got.seq}`);
    assert.ok(got.leaf_hash, "a sealed entry has its leaf hash");
    assert.deepEqual({ ...got, seq: null, leaf_hash: null }, want);
    return;
  }
  assert.deepEqual(got, want);
}

function instant(timestamp: string): bigint {
  const match = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/i.exec(timestamp);
  assert.ok(match, `timestamp ${timestamp} is not RFC 3339`);
  const [, seconds = "", fraction = "", zone = ""] = match;
  const millis = Date.parse(seconds + zone);
  assert.ok(!Number.isNaN(millis), `timestamp ${timestamp} does not parse`);
  return BigInt(millis) * 1_000_000n + BigInt(fraction.padEnd(9, "0"));
}

/** Asserts that the response is a problem+json whose correlation id is the response's X-Request-ID. */
function assertProblem<E extends ProblemDetails>(
  result: { error?: E; response: Response },
  status: number,
  typeSuffix: string,
): E {
  const { response } = result;
  assert.equal(response.status, status);
  assert.equal(response.headers.get("Content-Type"), "application/problem+json");
  const problem = problemOf(result);
  assert.ok(problem, "the error body is read as a problem");
  assert.equal(problem.status, status);
  assert.equal(problem.type, `/problems/${typeSuffix}`);
  assert.ok(problem.title.length > 0);
  assert.ok(problem.detail.length > 0);
  const requestId = response.headers.get("X-Request-ID");
  assert.ok(requestId, "the response has an X-Request-ID");
  assert.equal(problem.correlation_id, requestId);
  return problem;
}

describe("write", () => {
  test("one entry is stored as written and can be read back by id and Location", async () => {
    const category = uniqueCategory("write");
    const requestId = uniqueRequestId("write");
    const entry = {
      level: "WARNING",
      category,
      message: "new device",
      user_id: "user-42",
      context: { ip: "203.0.113.7", attempts: 2, tags: ["a", "b"] },
    } satisfies SystemLogCreate;

    const before = Date.now();
    const { data, error, response } = await api.POST("/system/logs", {
      params: { header: { "X-Request-ID": requestId } },
      body: entry,
    });
    const after = Date.now();

    assert.equal(error, undefined);
    assert.equal(response.status, 201);
    assert.equal(response.headers.get("X-Request-ID"), requestId);
    assert.ok(data);
    assert.match(data.id, uuidV7);
    assert.equal(data.level, entry.level);
    assert.equal(data.category, entry.category);
    assert.equal(data.message, entry.message);
    assert.equal(data.user_id, entry.user_id);
    assert.deepEqual(data.context, entry.context);
    assert.equal(data.correlation_id, requestId, "the request id is stored when the body gives none");
    const stored = Number(instant(data.timestamp) / 1_000_000n);
    assert.ok(stored >= before - 5_000 && stored <= after + 5_000, `timestamp ${data.timestamp} is about now`);

    const location = response.headers.get("Location");
    assert.ok(location, "201 has a Location");
    assert.equal(new URL(location, baseUrl).pathname, `/system/logs/${data.id}`);

    const got = await api.GET("/system/logs/{id}", { params: { path: { id: data.id } } });
    assert.equal(got.error, undefined);
    assert.equal(got.response.status, 200);
    assertSameEntry(got.data, data);
  });

  test("defaults: INFO, general, no user, empty context, and the body's correlation id wins", async () => {
    const { data, error, response } = await api.POST("/system/logs", {
      params: { header: { "X-Request-ID": uniqueRequestId("defaults") } },
      body: { message: "only a message", correlation_id: "checkout-7f3a" },
    });
    assert.equal(error, undefined);
    assert.equal(response.status, 201);
    assert.ok(data);
    assert.equal(data.level, "INFO");
    assert.equal(data.category, "general");
    assert.equal(data.user_id, null);
    assert.deepEqual(data.context, {});
    assert.equal(data.correlation_id, "checkout-7f3a");
  });

  test("the client's requestId is sent on every request and stored as the correlation id", async () => {
    const fixed = uniqueRequestId("client");
    const client = createValhallaClient({ baseUrl, token, requestId: fixed });
    const { data, response } = await client.POST("/system/logs", {
      body: { message: "fixed id", category: uniqueCategory("client") },
    });
    assert.equal(response.headers.get("X-Request-ID"), fixed);
    assert.equal(data?.correlation_id, fixed);

    let n = 0;
    const prefix = uniqueRequestId("seq");
    const minting = createValhallaClient({ baseUrl, token, requestId: () => `${prefix}-${++n}` });
    const first = await minting.GET("/system-health/live");
    const second = await minting.GET("/system-health/live");
    assert.equal(first.response.headers.get("X-Request-ID"), `${prefix}-1`);
    assert.equal(second.response.headers.get("X-Request-ID"), `${prefix}-2`);
    const own = await minting.GET("/system-health/live", { params: { header: { "X-Request-ID": "mine" } } });
    assert.equal(own.response.headers.get("X-Request-ID"), "mine", "a request's own id wins");
    assert.equal(n, 2);
  });

  test("the token is sent as a bearer Authorization header", async () => {
    const seen: Request[] = [];
    const client = createValhallaClient({
      baseUrl,
      token: "s3cret",
      fetch: (request) => {
        seen.push(request.clone());
        return fetch(request);
      },
    });
    const { data } = await client.GET("/system-health/live");
    assert.deepEqual(data, { status: "ok" });
    assert.equal(seen.length, 1);
    assert.equal(seen[0]?.headers.get("Authorization"), "Bearer s3cret");
  });

  test("without a valid token a write is a 401 problem with a Bearer challenge", async () => {
    for (const client of [createValhallaClient({ baseUrl }), createValhallaClient({ baseUrl, token: "vhl_unknown00_AAAAAAAAAAAAAAAAAAAAAAAAAA" })]) {
      const result = await client.POST("/system/logs", { body: { message: "refused" } });
      assertProblem(result, 401, "unauthorized");
      assert.match(result.response.headers.get("WWW-Authenticate") ?? "", /^Bearer /);
    }
  });

  test("the entry records the token that wrote it as its actor", async () => {
    const { data } = await api.POST("/system/logs", { body: { message: "who", category: uniqueCategory("actor") } });
    assert.equal(data?.actor, "bootstrap");
  });
});

describe("batch write", () => {
  test("stores every entry and returns them in input order", async () => {
    const category = uniqueCategory("batch");
    const entries: SystemLogCreate[] = Array.from({ length: 12 }, (_, i) => ({
      level: levels[i % levels.length],
      category,
      message: `entry ${i}`,
      context: { i },
    }));
    const requestId = uniqueRequestId("batch");

    const { data, error, response } = await api.POST("/system/logs/batch", {
      params: { header: { "X-Request-ID": requestId } },
      body: { entries },
    });

    assert.equal(error, undefined);
    assert.equal(response.status, 201);
    assert.equal(response.headers.get("X-Request-ID"), requestId);
    assert.ok(data);
    assert.equal(data.items.length, entries.length);
    data.items.forEach((item, i) => {
      assert.match(item.id, uuidV7);
      assert.equal(item.message, `entry ${i}`, `item ${i} is entry ${i}`);
      assert.equal(item.level, entries[i]?.level);
      assert.equal(item.category, category);
      assert.deepEqual(item.context, { i });
      assert.equal(item.correlation_id, requestId);
    });
    const ids = data.items.map((item) => item.id);
    assert.equal(new Set(ids).size, ids.length, "ids are distinct");

    const listed = await listCategory(api, category);
    assert.deepEqual(new Set(listed.map((item) => item.id)), new Set(ids));

    const last = data.items.at(-1);
    assert.ok(last);
    const got = await api.GET("/system/logs/{id}", { params: { path: { id: last.id } } });
    assertSameEntry(got.data, last);
  });

  test("one invalid entry rejects the whole batch, pointing at it", async () => {
    const category = uniqueCategory("batch-atomic");
    const entries: SystemLogCreate[] = [
      { category, message: "fine" },
      { category, message: "fine too" },
      { category, message: "" },
    ];
    const result = await api.POST("/system/logs/batch", { body: { entries } });
    assert.equal(result.data, undefined);
    const problem = assertProblem(result, 422, "validation-failed");
    assert.equal(problem.instance, "/system/logs/batch");
    assert.deepEqual(
      problem.errors?.map((e) => e.pointer),
      ["/entries/2/message"],
    );
    assert.deepEqual(await listCategory(api, category), [], "nothing was stored");
  });
});

describe("list", () => {
  test("pages with the cursor: newest first, no repeats, every entry once", async () => {
    const category = uniqueCategory("pages");
    const written: SystemLog[] = [];
    // Two batches and single writes, so that the pages cross both equal and
    // distinct timestamps.
    for (const size of [4, 1, 3, 1]) {
      const entries = Array.from({ length: size }, (_, i) => ({
        category,
        message: `write ${written.length + i}`,
      }));
      const { data } = await api.POST("/system/logs/batch", { body: { entries } });
      assert.ok(data);
      written.push(...data.items);
    }
    assert.equal(written.length, 9);

    const limit = 4;
    const pages: SystemLog[][] = [];
    let cursor: string | undefined;
    let latecomer: SystemLog | undefined;
    for (;;) {
      const { data, error, response } = await api.GET("/system/logs", {
        params: {
          query: {
            category,
            limit,
            include_total: pages.length === 0,
            ...(cursor === undefined ? {} : { cursor }),
          },
        },
      });
      assert.equal(error, undefined);
      assert.equal(response.status, 200);
      assert.ok(data);
      if (pages.length === 0) {
        assert.equal(data.total, written.length, "include_total counts every match");
        assert.equal(data.total_relation, "eq", "the total is exact below total_limit");
      } else {
        assert.equal(data.total, undefined, "no total unless asked");
        assert.equal(data.total_relation, undefined, "no total_relation unless asked");
      }
      pages.push(data.items);
      if (pages.length === 1) {
        // Written after the first page, so newer than the cursor: the next
        // pages must neither show it nor repeat or skip anything.
        const late = await api.POST("/system/logs", { body: { category, message: "latecomer" } });
        latecomer = late.data;
        assert.ok(latecomer);
      }
      if (data.next_cursor === null) {
        break;
      }
      assert.match(data.next_cursor, /^A[Q-T][A-Za-z0-9_-]{32}$/);
      assert.equal(data.items.length, limit, "only the last page is short");
      cursor = data.next_cursor;
      assert.ok(pages.length < 10, "pagination ends");
    }

    assert.deepEqual(
      pages.map((page) => page.length),
      [4, 4, 1],
    );
    const listed = pages.flat();
    const ids = listed.map((item) => item.id);
    assert.equal(new Set(ids).size, ids.length, "no entry is repeated across pages");
    assert.deepEqual(new Set(ids), new Set(written.map((item) => item.id)), "every written entry is listed once");
    assert.ok(latecomer && !ids.includes(latecomer.id), "an entry written after page 1 is not on later pages");

    for (let i = 1; i < listed.length; i++) {
      const prev = listed[i - 1];
      const cur = listed[i];
      assert.ok(prev && cur);
      const [a, b] = [instant(prev.timestamp), instant(cur.timestamp)];
      assert.ok(a > b || (a === b && prev.id > cur.id), `entry ${i} is older than entry ${i - 1} (or the same time, lower id)`);
    }

    // A fresh walk from the top now sees the latecomer first.
    const again = await listCategory(api, category, limit);
    assert.equal(again.length, written.length + 1);
    assert.equal(again[0]?.id, latecomer?.id);
  });

  test("filters combine: repeated level and min_level", async () => {
    const category = uniqueCategory("filters");
    const entries: SystemLogCreate[] = levels.map((level) => ({ level, category, message: level }));
    const { data } = await api.POST("/system/logs/batch", { body: { entries } });
    assert.ok(data);

    const either = await api.GET("/system/logs", {
      params: { query: { category, level: ["DEBUG", "ERROR"] } },
    });
    assert.deepEqual(either.data?.items.map((item) => item.level).sort(), ["DEBUG", "ERROR"]);

    const severe = await api.GET("/system/logs", { params: { query: { category, min_level: "ERROR" } } });
    assert.deepEqual(severe.data?.items.map((item) => item.level).sort(), ["CRITICAL", "ERROR"]);
  });

  test("an out-of-range limit is a 422 naming the parameter", async () => {
    const result = await api.GET("/system/logs", { params: { query: { limit: 0 } } });
    const problem = assertProblem(result, 422, "validation-failed");
    assert.deepEqual(problem.errors?.map((e) => e.parameter), ["limit"]);
  });
});

describe("get by id", () => {
  test("an unknown id is a 404 problem", async () => {
    const requestId = uniqueRequestId("missing");
    const result = await api.GET("/system/logs/{id}", {
      params: { path: { id: "00000000-0000-7000-8000-000000000000" }, header: { "X-Request-ID": requestId } },
    });
    assert.equal(result.data, undefined);
    const problem = assertProblem(result, 404, "not-found");
    assert.equal(problem.correlation_id, requestId);
  });

  test("an id that is not a UUID is a 422 naming the parameter", async () => {
    const result = await api.GET("/system/logs/{id}", { params: { path: { id: "not-a-uuid" } } });
    const problem = assertProblem(result, 422, "validation-failed");
    assert.deepEqual(problem.errors?.map((e) => e.parameter), ["id"]);
  });
});

describe("invalid write", () => {
  test("is a 422 problem+json listing every violation by pointer, with the request id", async () => {
    const category = uniqueCategory("invalid");
    const requestId = uniqueRequestId("invalid");
    const result = await api.POST("/system/logs", {
      params: { header: { "X-Request-ID": requestId } },
      body: {
        // @ts-expect-error: the generated LogLevel has no "LOUD"; the server must refuse it too.
        level: "LOUD",
        category,
        message: "",
        user_id: "u".repeat(129),
      },
    });

    assert.equal(result.data, undefined);
    const problem: ProblemDetails = assertProblem(result, 422, "validation-failed");
    assert.equal(result.response.headers.get("X-Request-ID"), requestId, "our X-Request-ID is echoed");
    assert.equal(problem.correlation_id, requestId);
    assert.equal(problem.instance, "/system/logs");
    const errors = problem.errors ?? [];
    assert.deepEqual(errors.map((e) => e.pointer).sort(), ["/level", "/message", "/user_id"]);
    for (const e of errors) {
      assert.ok(e.detail.length > 0);
      assert.equal(e.parameter, undefined);
      assert.equal(e.header, undefined);
    }
    assert.match(errors.find((e) => e.pointer === "/level")?.detail ?? "", /allowed values/);

    assert.deepEqual(await listCategory(api, category), [], "nothing was stored");
  });

  test("a request id the server cannot keep is replaced by a UUIDv7, also in the problem", async () => {
    const result = await api.POST("/system/logs", {
      params: { header: { "X-Request-ID": "not kept: spaces" } },
      body: { message: "" },
    });
    const problem = assertProblem(result, 422, "validation-failed");
    assert.match(problem.correlation_id, uuidV7);
    assert.deepEqual(problem.errors?.map((e) => e.pointer), ["/message"]);
  });
});
