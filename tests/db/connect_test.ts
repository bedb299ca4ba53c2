import assert from "node:assert/strict";
import { sql } from "kysely";
import { createDb } from "../../db/mod.ts";
import { createTestDatabase, databaseKinds } from "../_db.ts";
import { until } from "../_wait.ts";

const encoder = new TextEncoder();

/** One backend message: a type byte, an int32 length, the body. */
function message(type: string, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + body.length);
  out[0] = type.charCodeAt(0);
  new DataView(out.buffer).setInt32(1, 4 + body.length);
  out.set(body, 5);
  return out;
}

function int32(n: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setInt32(0, n);
  return bytes;
}

/**
 * A server that accepts every connection and then closes it as a fast shutdown does
 * to a connection it just accepted: the first statement after start-up (postgres.js
 * fetches the array types there) gets FATAL 57P01 and the socket closes.
 */
function startShuttingDownServer() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const serving = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      (async () => {
        const buffer = new Uint8Array(64 * 1024);
        await conn.read(buffer); // StartupMessage
        await conn.write(message("R", int32(0))); // AuthenticationOk
        await conn.write(message("Z", encoder.encode("I"))); // ReadyForQuery
        await conn.read(buffer);
        const fields = "SFATAL\0VFATAL\0C57P01\0Mterminating connection due to administrator " +
          "command\0\0";
        await conn.write(message("E", encoder.encode(fields)));
      })().catch(() => {}).finally(() => {
        conns.delete(conn);
        try {
          conn.close();
        } catch { /* already closed */ }
      });
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      for (const conn of conns) conn.close();
      await serving.catch(() => {});
    },
  };
}

Deno.test("createDb() survives a server that closes new connections during start-up, as a fast shutdown does", async () => {
  const server = startShuttingDownServer();
  const db = createDb({ url: `postgres://scorestream@127.0.0.1:${server.port}/scorestream` });
  // Registered after createDb, so it sees what the guard in createDb left unhandled.
  const unhandled: unknown[] = [];
  const guarded: unknown[] = [];
  const listener = (event: PromiseRejectionEvent) => {
    (event.defaultPrevented ? guarded : unhandled).push(event.reason);
    event.preventDefault();
  };
  globalThis.addEventListener("unhandledrejection", listener);
  try {
    for (let i = 0; i < 2; i++) {
      await assert.rejects(sql`SELECT 1`.execute(db.db), "the query itself still fails");
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(unhandled, [], "no connection error is left unhandled");
    assert.ok(guarded.length > 0, "the server did make postgres.js reject in the background");
  } finally {
    globalThis.removeEventListener("unhandledrejection", listener);
    await Promise.race([db.close(), new Promise((resolve) => setTimeout(resolve, 1000))]);
    await server.close();
  }
});

Deno.test("createDb() leaves unhandled rejections that are not postgres.js connection errors alone", async () => {
  const db = createDb({ url: "postgres://scorestream@127.0.0.1:1/scorestream" });
  const seen: boolean[] = [];
  const listener = (event: PromiseRejectionEvent) => {
    seen.push(event.defaultPrevented);
    event.preventDefault();
  };
  globalThis.addEventListener("unhandledrejection", listener);
  try {
    const error = Object.assign(new Error("not from postgres.js"), { code: "CONNECTION_CLOSED" });
    Promise.reject(error);
    Promise.reject(new Error("a bug"));
    await until("both rejections to reach the listener", () => seen.length === 2, 2_000, 10);
    assert.deepEqual(seen, [false, false]);
  } finally {
    globalThis.removeEventListener("unhandledrejection", listener);
    await db.close();
  }
});

/** Resolves to what `work` settles with, or "hung" after `ms`. */
function within<T>(work: Promise<T>, ms = 5_000): Promise<T | "hung" | "failed"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"hung">((resolve) => timer = setTimeout(() => resolve("hung"), ms));
  return Promise.race([work.catch(() => "failed" as const), late]).finally(() =>
    clearTimeout(timer)
  );
}

Deno.test({
  name:
    "createDb() answers again, at once, after the server terminates its connection mid-statement",
  ignore: !databaseKinds.includes("server"),
  async fn() {
    await using t = await createTestDatabase("server");
    const applicationName = `connect-test-${crypto.randomUUID()}`;
    const db = createDb({ url: t.url, max: 1, applicationName });
    try {
      for (const inTransaction of [false, true]) {
        const statement = sql`SELECT pg_sleep(3)`;
        const running = inTransaction
          ? db.db.transaction().execute((tx) => statement.execute(tx))
          : statement.execute(db.db);
        await until(
          "the statement to run",
          async () =>
            (await sql`SELECT 1 FROM pg_stat_activity
            WHERE application_name = ${applicationName} AND state = 'active'`.execute(t.db))
              .rows.length > 0,
          10_000,
          20,
        );
        await sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE application_name = ${applicationName}`.execute(t.db);
        // Outside a transaction the statement may run again on a new connection
        // (the dialect does so when postgres.js reports the server's 57P01 before
        // the socket's close): either way it settles. In a transaction it fails.
        const outcome = await within(running, 10_000);
        if (inTransaction) assert.equal(outcome, "failed");
        else assert.notEqual(outcome, "hung");
        const outcomes = [];
        for (let i = 0; i < 3; i++) {
          const outcome = await within(sql<{ n: number }>`SELECT ${i}::int4 AS n`.execute(db.db));
          outcomes.push(typeof outcome === "string" ? outcome : outcome.rows[0].n);
        }
        assert.deepEqual(outcomes, [0, 1, 2], "no statement hangs, none fails");
      }
    } finally {
      await within(db.close());
    }
  },
});
