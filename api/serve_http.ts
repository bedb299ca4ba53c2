import type { LogEntry } from "./create_api.ts";

/**
 * Deno.serve, listening again whenever its accept loop dies. Deno.serve never
 * closes a connection that is idle or sends its header slowly, so enough of
 * them exhaust the process's file descriptors (`ulimit -n`); accept() then
 * fails, Deno.serve stops listening for good and rejects `finished`, which
 * unhandled would end the process, ingest included. Instead the failure is
 * logged and the port is listened on again every second, so that HTTP is back
 * within a second of the descriptors being free. A first listen that fails
 * (the port is taken) still fails start-up.
 */
export function serveHttp(
  options: Deno.ServeTcpOptions,
  handler: Deno.ServeHandler<Deno.NetAddr>,
  { signal, log }: { signal: AbortSignal; log(entry: LogEntry): void },
): { shutdown(): Promise<void> } {
  let server = Deno.serve(options, handler);
  const relisten = () =>
    setTimeout(() => {
      if (signal.aborted) return;
      try {
        server = Deno.serve(options, handler);
        watch(server);
      } catch (error) {
        log({ level: "error", msg: "cannot listen again, retrying", error: String(error) });
        relisten();
      }
    }, 1_000);
  const watch = (current: Deno.HttpServer<Deno.NetAddr>) =>
    current.finished.catch((error) => {
      if (signal.aborted) return;
      log({
        level: "error",
        msg: "the HTTP server stopped accepting connections; listening again in 1 s",
        error: String(error),
      });
      relisten();
    });
  watch(server);
  return { shutdown: () => server.shutdown().catch(() => {}) };
}
