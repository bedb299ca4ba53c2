import assert from "node:assert/strict";
import { shardOf } from "../../ingest/shard.ts";

Deno.test("shardOf() is stable across calls and releases", () => {
  // Pinned FNV-1a values: changing the hash would move students between writers.
  assert.equal(shardOf("foo", 1_000_003), 0xa9f37ed7 % 1_000_003);
  assert.equal(shardOf("", 1_000_003), 0x811c9dc5 % 1_000_003);
});

Deno.test("shardOf() stays within the writer count and spreads students evenly", () => {
  const counts = [0, 0, 0, 0];
  for (let i = 0; i < 40_000; i++) {
    const shard = shardOf(`Student_${i}`, 4);
    assert.ok(shard >= 0 && shard < 4);
    counts[shard]++;
  }
  for (const count of counts) assert.ok(count > 9_000 && count < 11_000, `${counts}`);
});
