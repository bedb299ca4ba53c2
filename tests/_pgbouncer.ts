import { freePort } from "./_service.ts";
import { until } from "./_wait.ts";

/** pgbouncer in transaction mode in front of a Postgres server, for one test. */
export interface Pgbouncer {
  /** `url` with its host and port replaced by pgbouncer's. */
  url: string;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Starts Debian's pgbouncer (`pool_mode = transaction`, which keeps no
 * prepared statements) on a free loopback port in front of the server of
 * `url`, with a configuration in a temporary directory. As root it runs as
 * the user `postgres` (pgbouncer refuses to run as root).
 */
export async function startPgbouncer(url: string): Promise<Pgbouncer> {
  const target = new URL(url);
  const port = freePort();
  const dir = await Deno.makeTempDir({ prefix: "scorestream-pgbouncer-" });
  await Deno.chmod(dir, 0o777);
  const user = decodeURIComponent(target.username || "postgres");
  await Deno.writeTextFile(
    `${dir}/pgbouncer.ini`,
    `[databases]
* = host=${target.hostname} port=${target.port || 5432} user=${user}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir =
auth_type = any
pool_mode = transaction
max_client_conn = 500
default_pool_size = 40
logfile = ${dir}/pgbouncer.log
`,
  );
  const root = Deno.uid() === 0;
  const child = new Deno.Command("pgbouncer", {
    args: [...root ? ["-u", "postgres"] : [], `${dir}/pgbouncer.ini`],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  let exited = false;
  child.status.then(() => exited = true);
  const proxied = new URL(url);
  proxied.hostname = "127.0.0.1";
  proxied.port = String(port);
  const close = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* gone */ }
    await child.status;
    await stderr;
    await Deno.remove(dir, { recursive: true });
  };
  try {
    await until("pgbouncer to listen", async () => {
      if (exited) {
        throw new Error(`pgbouncer exited: ${await stderr}\n${await log(dir)}`);
      }
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        return true;
      } catch {
        return false;
      }
    }, 10_000);
  } catch (error) {
    await close();
    throw error;
  }
  return { url: proxied.href, close, [Symbol.asyncDispose]: close };
}

async function log(dir: string): Promise<string> {
  return await Deno.readTextFile(`${dir}/pgbouncer.log`).catch(() => "");
}
