import assert from "node:assert/strict";
import { sql } from "kysely";
import { applyScores, listenForChanges } from "../../db/mod.ts";
import { createTestDatabase, databaseKinds } from "../_db.ts";
import { startTcpProxy } from "../_tcp_proxy.ts";
import { until } from "../_wait.ts";

function recorder(url: string) {
  const events: string[] = [];
  const listener = listenForChanges({
    url,
    retryMs: 50,
    onChange: () => events.push("change"),
    onListening: (listening) => events.push(listening ? "listening" : "lost"),
  });
  return { events, listener };
}

// Only a server: the embedded PGlite accepts LISTEN but delivers no
// notifications through its socket, and main.ts listens only on a server.
if (databaseKinds.includes("server")) {
  Deno.test("listenForChanges() hears every commit of applyScores() and nothing else (server)", async () => {
    await using t = await createTestDatabase("server");
    const { events, listener } = recorder(t.url);
    try {
      await until("listening", () => events.includes("listening"), 10_000);
      await applyScores(t.db, 0, { names: ["a"], exams: [1], scores: [0.5] }, []);
      await applyScores(t.db, 1, { names: ["b"], exams: [2], scores: [0.25] }, []);
      await until("two changes", () => events.length >= 3, 10_000);
      await sql`SELECT count(*) FROM results`.execute(t.db);
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.deepEqual(events, ["listening", "change", "change"]);
    } finally {
      await listener.close();
    }
  });

  Deno.test("listenForChanges() reports a lost connection, listens again and hears later commits (server)", async () => {
    await using t = await createTestDatabase("server");
    const { events, listener } = recorder(t.url);
    try {
      await until("listening", () => events.includes("listening"), 10_000);
      await sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE application_name = 'scorestream-changes' AND datname = current_database()`
        .execute(t.db);
      await until(
        "listening again",
        () => events.filter((e) => e === "listening").length === 2,
        10_000,
      );
      assert.deepEqual(events, ["listening", "lost", "listening"]);
      await applyScores(t.db, 0, { names: ["a"], exams: [1], scores: [0.5] }, []);
      await until("a change after listening again", () => events.at(-1) === "change", 10_000);
    } finally {
      await listener.close();
    }
  });
}

if (databaseKinds.includes("server")) {
  Deno.test("listenForChanges() counts a connection that stops delivering as lost, and listens again once it can (server)", async () => {
    await using t = await createTestDatabase("server");
    const server = new URL(t.url);
    await using proxy = startTcpProxy({ hostname: server.hostname, port: Number(server.port) });
    const url = new URL(t.url);
    url.port = String(proxy.port);
    const events: string[] = [];
    const listener = listenForChanges({
      url: url.href,
      retryMs: 50,
      heartbeatMs: 100,
      onChange: () => events.push("change"),
      onListening: (listening) => events.push(listening ? "listening" : "lost"),
    });
    // A second listener's heartbeats are not changes to the first.
    const { events: otherEvents, listener: other } = recorder(t.url);
    try {
      await until("listening", () => events.includes("listening"), 10_000);
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.deepEqual(events, ["listening"], "heartbeats are not changes");
      proxy.stall();
      await until("the silent connection counted as lost", () => events.includes("lost"), 10_000);
      proxy.up();
      await until("listening again", () => events.at(-1) === "listening", 10_000);
      await applyScores(t.db, 0, { names: ["a"], exams: [1], scores: [0.5] }, []);
      await until("a change after listening again", () => events.at(-1) === "change", 10_000);
      assert.deepEqual(otherEvents.filter((e) => e !== "change"), ["listening"]);
    } finally {
      await listener.close();
      await other.close();
    }
  });
}
