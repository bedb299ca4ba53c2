import assert from "node:assert/strict";
import { createDb, loadCheckpoint } from "../../db/mod.ts";
import { createCheckpointer } from "../../ingest/checkpointer.ts";
import { createTestDatabase, databaseKinds } from "../_db.ts";
import { startTcpProxy } from "../_tcp_proxy.ts";
import { until } from "../_wait.ts";

const server = databaseKinds.includes("server");

Deno.test({
  name: "createCheckpointer() close() stores the latest id",
  ignore: !server,
  async fn() {
    await using database = await createTestDatabase("server");
    const checkpointer = createCheckpointer({ db: database.db, feed: "feed" });
    for (const id of ["1", "2", "3"]) checkpointer.update(id);
    await checkpointer.close(AbortSignal.timeout(5_000));
    assert.equal(await loadCheckpoint(database.db, "feed"), "3");
  },
});

Deno.test({
  name:
    "createCheckpointer() close() returns at its deadline while a write hangs on a silent network",
  ignore: !server,
  async fn() {
    await using database = await createTestDatabase("server");
    const target = new URL(database.url);
    await using proxy = startTcpProxy({ hostname: target.hostname, port: Number(target.port) });
    target.port = String(proxy.port);
    const db = createDb({ url: target.href });
    try {
      const saved: string[] = [];
      const checkpointer = createCheckpointer({
        db: db.db,
        feed: "feed",
        onSaved: (id) => saved.push(id),
      });
      checkpointer.update("1");
      await until("the first checkpoint to be saved", () => saved.length > 0, 2_000, 20);
      assert.deepEqual(saved, ["1"]);
      proxy.stall();
      checkpointer.update("2");
      let timer: ReturnType<typeof setTimeout> | undefined;
      const outcome = await Promise.race([
        checkpointer.close(AbortSignal.timeout(200)).then(() => "closed"),
        new Promise((resolve) => timer = setTimeout(() => resolve("hung"), 5_000)),
      ]);
      clearTimeout(timer);
      assert.equal(outcome, "closed");
      assert.deepEqual(saved, ["1"], "the hanging write did not count as saved");
    } finally {
      proxy.up();
      await db.close();
    }
  },
});
