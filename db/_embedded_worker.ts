/// <reference lib="deno.worker" />
// Runs PGlite in its own thread, so its synchronous WASM work never stalls
// ingest, and serves it on loopback over the Postgres wire protocol.
import { PGlite } from "@electric-sql/pglite";
import { serveOverSocket } from "./_pglite_server.ts";

const { dataDir } = (await new Promise<MessageEvent>((resolve) => {
  self.onmessage = resolve;
})).data as { dataDir: string };

const pglite = await PGlite.create(dataDir);
const server = await serveOverSocket(pglite);
self.onmessage = async () => {
  await server.close();
  await pglite.close();
  self.postMessage({ closed: true });
};
self.postMessage({ port: server.port });
