import { createTestDatabase, databaseKinds } from "./_db.ts";
import { startService } from "./_service.ts";
import { until } from "./_wait.ts";

const OPEN_FILES = 256;

/** GET /healthz on a connection of its own; the status code, or the error. */
async function healthzOnNewConnection(port: number): Promise<number | string> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await conn.write(
        new TextEncoder().encode("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
      );
      const buffer = new Uint8Array(64);
      const timeout = new Promise<null>((resolve) => setTimeout(() => resolve(null), 1_000));
      const n = await Promise.race([conn.read(buffer), timeout]);
      return Number(new TextDecoder().decode(buffer.subarray(0, n ?? 0)).split(" ")[1]);
    } finally {
      conn.close();
    }
  } catch (error) {
    return String(error);
  }
}

Deno.test("service answers again after idle connections ran it out of file descriptors", async () => {
  // On the server in DATABASE_URL if there is one, else on its own PGlite under DATA_DIR.
  await using database = databaseKinds.includes("server")
    ? await createTestDatabase("server")
    : undefined;
  const dataDir = `./data/test-${crypto.randomUUID()}`;
  const service = await startService(
    database
      ? { ROLE: "api", DATABASE_URL: database.url }
      : { ROLE: "api", DATABASE_URL: "", DATA_DIR: dataDir },
    { openFiles: OPEN_FILES },
  ).catch(async (error) => {
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    throw error;
  });
  const port = Number(new URL(service.url).port);
  const flood: Deno.TcpConn[] = [];
  try {
    // More idle connections than the service has descriptors: Deno.serve
    // never closes them, so its accept() fails with "Too many open files".
    for (let i = 0; i < 2 * OPEN_FILES; i += 32) {
      const batch = await Promise.allSettled(
        Array.from({ length: 32 }, () => Deno.connect({ hostname: "127.0.0.1", port })),
      );
      for (const result of batch) if (result.status === "fulfilled") flood.push(result.value);
    }
    await until(
      "the server to log that it stopped accepting connections",
      () => service.logs().some((r) => String(r.msg).includes("stopped accepting connections")),
      10_000,
    );
    for (const conn of flood.splice(0)) conn.close();

    let status: number | string = "not tried";
    await until(
      () => `/healthz after the flood: ${status}\n${service.output()}`,
      async () => (status = await healthzOnNewConnection(port)) === 200,
      10_000,
      200,
    );
  } finally {
    for (const conn of flood) conn.close();
    await service.stop();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
});
