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
  if (!dataDir.startsWith("memory://")) await Deno.mkdir(dataDir, { recursive: true });
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
    },
  };
}
