/** An embedded Postgres (PGlite) served on loopback; `close()` stops it. */
export interface EmbeddedPostgres {
  url: string;
  close(): Promise<void>;
}

/**
 * Starts PGlite persisted under `dataDir` (or in memory for `memory://`) in a worker of its own and serves it
 * over the Postgres wire protocol, so that every part of the service, writer
 * workers included, talks to it with postgres.js as it would to a server.
 */
export async function startEmbeddedPostgres(
  { dataDir }: { dataDir: string },
): Promise<EmbeddedPostgres> {
  let lock: Deno.FsFile | undefined;
  if (!dataDir.startsWith("memory://")) {
    await Deno.mkdir(dataDir, { recursive: true });
    lock = await lockDirectory(dataDir);
  }
  const worker = new Worker(new URL("./_embedded_worker.ts", import.meta.url), { type: "module" });
  const reply = () =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      worker.onmessage = (e) => resolve(e.data);
      worker.onerror = (e) => {
        e.preventDefault();
        reject(new Error(`Cannot start the embedded database: ${e.message}`));
      };
    });
  const started = reply();
  worker.postMessage({ dataDir });
  const { port } = await started as { port: number };
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async close() {
      const closed = reply();
      worker.postMessage({ close: true });
      await closed;
      worker.terminate();
      lock?.close();
    },
  };
}

/** Two PGlite instances on one directory would corrupt it: hold a lock on it. */
async function lockDirectory(dataDir: string): Promise<Deno.FsFile> {
  const file = await Deno.open(`${dataDir}/scorestream.lock`, { create: true, write: true });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const locked = await Promise.race([
    file.lock(true).then(() => true),
    new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), 2_000)),
  ]);
  clearTimeout(timer);
  if (!locked) {
    file.close();
    throw new Error(`Cannot use ${dataDir}: another process holds its lock`);
  }
  return file;
}
