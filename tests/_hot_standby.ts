import postgres from "postgres";
import { freePort } from "./_service.ts";
import { until } from "./_wait.ts";

/** A streaming hot standby of the Postgres server of a URL, for one test. */
export interface HotStandby {
  /** The same database as the primary's URL, on the standby. */
  url: string;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const REPLICATION_RULE = "host replication all 127.0.0.1/32 trust";

/** Runs a command (as the user `postgres` when this process is root); throws on failure. */
async function run(command: string, args: string[]): Promise<string> {
  const root = Deno.uid() === 0;
  const { code, stdout, stderr } = await new Deno.Command(root ? "runuser" : command, {
    args: root ? ["-u", "postgres", "--", command, ...args] : args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(stdout);
  if (code !== 0) {
    throw new Error(`${command} ${args.join(" ")} failed:\n${new TextDecoder().decode(stderr)}`);
  }
  return text;
}

/**
 * Creates a hot standby of the server in `url` on another port: the primary
 * gets `host replication all 127.0.0.1/32 trust` in its pg_hba.conf when it
 * has no such rule (and reloads it), `pg_basebackup -R` copies it (through a
 * replication slot of its own, dropped by `close()`) into a
 * temporary directory, which gets its own postgresql.conf (port,
 * hot_standby = on, the settings a standby must not have lower than its
 * primary) and pg_hba.conf, and `pg_ctl` starts it, as user postgres.
 */
export async function startHotStandby(url: string): Promise<HotStandby> {
  const primary = postgres(url, { max: 1, onnotice: () => {} });
  let dir: string | undefined;
  let bin = "";
  let started = false;
  // A replication slot keeps the WAL the copy and the standby still need: a busy
  // shared server recycles it otherwise. It must go with the standby.
  const slot = `scorestream_standby_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const close = async () => {
    if (started) await run(`${bin}pg_ctl`, ["-D", `${dir}/data`, "-m", "immediate", "stop"]);
    if (dir) await Deno.remove(dir, { recursive: true });
    const admin = postgres(url, { max: 1, onnotice: () => {} });
    try {
      await until("the standby's replication slot to be dropped", async () => {
        const [{ active }] = await admin<{ active: boolean | null }[]>`
          SELECT (SELECT active FROM pg_replication_slots WHERE slot_name = ${slot}) AS active`;
        if (active === null) return true;
        if (!active) await admin`SELECT pg_drop_replication_slot(${slot})`.catch(() => {});
        return false;
      }, 10_000);
    } finally {
      await admin.end();
    }
  };
  try {
    const settings = Object.fromEntries(
      (await primary<{ name: string; setting: string }[]>`
        SELECT name, setting FROM pg_settings WHERE name IN ('wal_level', 'hba_file',
          'server_version_num', 'max_connections', 'max_worker_processes', 'max_wal_senders',
          'max_prepared_transactions', 'max_locks_per_transaction')`).map((
        r,
      ) => [r.name, r.setting]),
    );
    if (settings.wal_level === "minimal") {
      throw new Error("Cannot create a standby: the primary runs with wal_level = minimal");
    }
    const hba = await Deno.readTextFile(settings.hba_file);
    if (!/^\s*host\s+replication\s+all\s+127\.0\.0\.1\/32\s+trust\b/m.test(hba)) {
      await Deno.writeTextFile(settings.hba_file, `\n${REPLICATION_RULE}\n`, { append: true });
      await primary`SELECT pg_reload_conf()`;
    }
    const major = Math.floor(Number(settings.server_version_num) / 10_000);
    const debian = `/usr/lib/postgresql/${major}/bin/`;
    bin = await Deno.stat(`${debian}pg_ctl`).then(() => debian, () => "");

    dir = await Deno.makeTempDir({ prefix: "scorestream-standby-" });
    if (Deno.uid() === 0) {
      const uid = Number((await new Deno.Command("id", { args: ["-u", "postgres"] }).output())
        .stdout.reduce((s, b) => s + String.fromCharCode(b), ""));
      await Deno.chown(dir, uid, null);
    }
    const source = new URL(url);
    const user = decodeURIComponent(source.username || "postgres");
    await run(`${bin}pg_basebackup`, [
      "-h",
      source.hostname,
      "-p",
      source.port || "5432",
      "-U",
      user,
      "-D",
      `${dir}/data`,
      "-R",
      "-X",
      "stream",
      "-C",
      "-S",
      slot,
      // A spread checkpoint would keep the copy waiting for minutes.
      "-c",
      "fast",
    ]);
    const port = freePort();
    await Deno.writeTextFile(
      `${dir}/data/postgresql.conf`,
      `port = ${port}
listen_addresses = '127.0.0.1'
unix_socket_directories = '${dir}'
hot_standby = on
shared_buffers = 32MB
max_connections = ${settings.max_connections}
max_worker_processes = ${settings.max_worker_processes}
max_wal_senders = ${settings.max_wal_senders}
max_prepared_transactions = ${settings.max_prepared_transactions}
max_locks_per_transaction = ${settings.max_locks_per_transaction}
`,
    );
    await Deno.writeTextFile(
      `${dir}/data/pg_hba.conf`,
      "local all all trust\nhost all all 127.0.0.1/32 trust\n",
    );
    await run(`${bin}pg_ctl`, ["-D", `${dir}/data`, "-l", `${dir}/log`, "-w", "start"]);
    started = true;
    const standby = new URL(url);
    standby.hostname = "127.0.0.1";
    standby.port = String(port);
    const probe = postgres(standby.href, { max: 1, onnotice: () => {} });
    try {
      await until("the standby to replay", async () => {
        const [{ recovery }] = await probe<{ recovery: boolean }[]>`
          SELECT pg_is_in_recovery() AS recovery`.catch(() => [{ recovery: false }]);
        return recovery;
      });
    } finally {
      await probe.end();
    }
    return { url: standby.href, close, [Symbol.asyncDispose]: close };
  } catch (error) {
    await close().catch(() => {});
    throw error;
  } finally {
    await primary.end();
  }
}
