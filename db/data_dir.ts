/**
 * Where the embedded Postgres keeps its files: `DATA_DIR`, else ./data.
 *
 * Run as a script it prints that directory: the start task grants write access to
 * what it prints (`--allow-write=$(deno run --allow-env=DATA_DIR db/data_dir.ts)`), so
 * that any DATA_DIR works with `deno task start` and the service may write nothing else.
 * It is an environment variable only, for that reason: a flag would come too late.
 */
export const DEFAULT_DATA_DIR = "./data";

export function dataDir(env: string | undefined = Deno.env.get("DATA_DIR")): string {
  return env || DEFAULT_DATA_DIR;
}

if (import.meta.main) console.log(dataDir());
