// Tests of follow() and its Server-Sent Events parser: the parser on its
// own, and follow() against the live Valhalla at VALHALLA_URL (see
// valhalla.test.ts for how to run them).

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, test } from "node:test";

import { createValhallaClient, EventStreamParser, follow, type SystemLog } from "./valhalla.js";

describe("EventStreamParser", () => {
  test("splits events across any chunking, skips comments, keeps ids and the retry hint", () => {
    const stream =
      "retry: 2000\n\n: heartbeat\n\nid: 7\nevent: entry\ndata: {\"a\":1}\n\n" +
      "event: shutdown\r\ndata: line one\r\ndata: line two\r\n\r\n";
    for (const size of [1, 3, 7, stream.length]) {
      const parser = new EventStreamParser();
      const events = [];
      for (let i = 0; i < stream.length; i += size) {
        events.push(...parser.push(stream.slice(i, i + size)));
      }
      assert.deepEqual(events, [
        { event: "entry", id: "7", data: '{"a":1}', retry: 2000 },
        { event: "shutdown", data: "line one\nline two", retry: 2000 },
      ]);
    }
  });
});

const baseUrl = process.env["VALHALLA_URL"];
const token = process.env["VALHALLA_TOKEN"];

describe("follow", { skip: !baseUrl || !token }, () => {
  test("yields each matching entry once, in seq order, after the given seq", async () => {
    const api = createValhallaClient({ baseUrl: baseUrl!, token: token! });
    const category = `ts-follow-${randomUUID().slice(0, 8)}`;
    const written: SystemLog[] = [];
    for (const message of ["one", "two", "three"]) {
      const { data } = await api.POST("/system/logs", { body: { category, message } });
      assert.ok(data);
      written.push(data);
    }
    // Wait (bounded) until the first is sealed, to start just before it.
    let firstSeq: number | null = null;
    for (let i = 0; i < 300 && firstSeq === null; i++) {
      const { data } = await api.GET("/system/logs/{id}", { params: { path: { id: written[0]!.id } } });
      firstSeq = data?.seq ?? null;
      if (firstSeq === null) await new Promise((r) => setTimeout(r, 50));
    }
    assert.notEqual(firstSeq, null, "the entry was not sealed within 15 s");
    const controller = new AbortController();
    const timeout = setTimeout(() => controller.abort(), 30_000);
    const got: SystemLog[] = [];
    for await (const entry of follow({
      baseUrl: baseUrl!,
      token: token!,
      query: { category, after: firstSeq! - 1 },
      signal: controller.signal,
    })) {
      got.push(entry);
      if (got.length === 3) break;
    }
    clearTimeout(timeout);
    assert.deepEqual(
      got.map((e) => e.message),
      ["one", "two", "three"],
    );
    assert.deepEqual(
      got.map((e) => e.id),
      written.map((e) => e.id),
    );
    for (let i = 1; i < got.length; i++) assert.ok(got[i]!.seq! > got[i - 1]!.seq!);
  });

  test("a bad token is refused for good, not retried", async () => {
    await assert.rejects(async () => {
      for await (const _ of follow({ baseUrl: baseUrl!, token: "vhl_nobody00_" + "x".repeat(22) })) {
        assert.fail("no entry expected");
      }
    }, /stream refused: 401/);
  });
});
