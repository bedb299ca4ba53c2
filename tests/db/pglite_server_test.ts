import assert from "node:assert/strict";
import postgres from "postgres";
import { sql } from "kysely";
import { createDb, migrateToLatest, startEmbeddedPostgres } from "../../db/mod.ts";
import { createTestDatabase } from "../_db.ts";

Deno.test("the embedded server migrates while other clients' reads fail on the missing tables", async () => {
  const embedded = await startEmbeddedPostgres({ dataDir: "memory://" });
  const control = createDb({ url: embedded.url, max: 2 });
  const readers = postgres(embedded.url, { max: 4, onnotice: () => {} });
  const stop = new AbortController();
  let failures = 0;
  // Queries with parameters make postgres.js describe first and end that unit
  // with Flush, inside the implicit transaction of the extended protocol.
  const read = async () => {
    while (!stop.signal.aborted) {
      await readers`SELECT count(*) FROM students WHERE name > ${"a"}`.catch(() => failures++);
    }
  };
  const reading = Promise.all([read(), read(), read(), read()]);
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const migrated = await Promise.race([
      migrateToLatest(control.db).then(() => true),
      new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), 20_000)),
    ]);
    assert.ok(migrated, `the migration hung; ${failures} reads had failed`);
  } finally {
    clearTimeout(timer);
    stop.abort();
    await Promise.race([reading, new Promise((r) => setTimeout(r, 2_000))]);
    await readers.end({ timeout: 1 });
    await control.close();
    await embedded.close();
  }
});

Deno.test("a client that disconnects inside a transaction leaves nothing behind on the embedded server", async () => {
  await using t = await createTestDatabase("embedded");
  const gone = postgres(t.url, { max: 1, onnotice: () => {} });
  let inserted!: () => void;
  const insertedOnce = new Promise<void>((resolve) => inserted = resolve);
  gone.begin(async (tx) => {
    await tx`INSERT INTO students (name) VALUES (${"left-behind"})`;
    inserted();
    await new Promise(() => {});
  }).catch(() => {});
  await insertedOnce;
  await gone.end({ timeout: 0 });
  const { rows } = await sql<{ n: string }>`SELECT count(*) AS n FROM students`.execute(t.db);
  assert.equal(Number(rows[0].n), 0);
  await sql`INSERT INTO students (name) VALUES ('after')`.execute(t.db);
});

Deno.test("a client that disconnects while the server skips to its Sync leaves others unaffected", async () => {
  await using t = await createTestDatabase("embedded");
  const port = Number(new URL(t.url).port);
  const socket = await Deno.connect({ hostname: "127.0.0.1", port });
  await socket.write(startupMessage({ user: "postgres", database: "postgres" }));
  await readUntil(socket, "Z".charCodeAt(0));
  // Parse of a statement that fails, then Flush: the server now discards every
  // message until a Sync, which this client never sends.
  await socket.write(concat(message("P", "\0SELECT * FROM nowhere\0\0\0"), message("H", "")));
  await readUntil(socket, "E".charCodeAt(0));
  socket.close();
  const { rows } = await sql<{ n: number }>`SELECT ${1}::int AS n`.execute(t.db);
  assert.deepEqual(rows, [{ n: 1 }]);
});

function message(type: string, body: string): Uint8Array {
  const bytes = new TextEncoder().encode(body);
  const out = new Uint8Array(5 + bytes.length);
  out[0] = type.charCodeAt(0);
  new DataView(out.buffer).setInt32(1, 4 + bytes.length);
  out.set(bytes, 5);
  return out;
}

function startupMessage(parameters: Record<string, string>): Uint8Array {
  const body = new TextEncoder().encode(
    Object.entries(parameters).map(([k, v]) => `${k}\0${v}\0`).join("") + "\0",
  );
  const out = new Uint8Array(8 + body.length);
  new DataView(out.buffer).setInt32(0, out.length);
  new DataView(out.buffer).setInt32(4, 196608);
  out.set(body, 8);
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((offset, p) => (out.set(p, offset), offset + p.length), 0);
  return out;
}

/** Reads whole messages until one of `type` arrives; throws on end of stream. */
async function readUntil(conn: Deno.Conn, type: number): Promise<void> {
  let buffered: Uint8Array = new Uint8Array(0);
  const buffer = new Uint8Array(4096);
  while (true) {
    while (buffered.length >= 5) {
      const length = new DataView(buffered.buffer, buffered.byteOffset).getInt32(1);
      if (buffered.length < 1 + length) break;
      if (buffered[0] === type) return;
      buffered = buffered.slice(1 + length);
    }
    const n = await conn.read(buffer);
    if (n === null) throw new Error("the server closed the connection");
    buffered = concat(buffered, buffer.subarray(0, n));
  }
}

Deno.test("clients that connect, read and close never change another client's answers on the embedded server", async () => {
  const embedded = await startEmbeddedPostgres({ dataDir: "memory://" });
  const steady = postgres(embedded.url, { max: 1, onnotice: () => {} });
  const wrong: unknown[] = [];
  let stop = false;
  const reading = (async () => {
    for (let n = 0; !stop; n++) {
      const [row] = await steady`SELECT ${`steady ${n}`}::text AS answer`;
      if (row?.answer !== `steady ${n}`) wrong.push(row);
    }
  })();
  try {
    for (let i = 0; i < 30; i++) {
      const passing = postgres(embedded.url, { max: 1, onnotice: () => {} });
      await passing`SELECT ${i}::int AS i`;
      await passing.end({ timeout: 1 });
    }
  } finally {
    stop = true;
    await reading;
    await steady.end({ timeout: 1 });
    await embedded.close();
  }
  assert.deepEqual(wrong, []);
});
