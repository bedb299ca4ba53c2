// No Docker engine runs here, so the Dockerfile's promises are checked on its text.
import assert from "node:assert/strict";
import { startTaskWords } from "./_service.ts";

interface Instruction {
  keyword: string;
  args: string;
}

interface Problem {
  code:
    | "base"
    | "cache"
    | "user"
    | "allow-all"
    | "healthcheck"
    | "expose"
    | "env"
    | "cmd"
    | "volume";
  message: string;
}

// Joins continuation lines and drops comments and blank lines, as Docker does.
function parseDockerfile(text: string): Instruction[] {
  const instructions: Instruction[] = [];
  let pending = "";
  for (const line of text.split(/\r?\n/)) {
    if (/^\s*#/.test(line) || (pending === "" && line.trim() === "")) continue;
    if (line.endsWith("\\")) {
      pending += line.slice(0, -1) + " ";
      continue;
    }
    const whole = (pending + line).trim();
    pending = "";
    if (whole === "") continue;
    const [keyword] = whole.split(/\s/, 1);
    instructions.push({ keyword: keyword.toUpperCase(), args: whole.slice(keyword.length).trim() });
  }
  return instructions;
}

// Exec form (a JSON array) as it is; shell form split at white space.
function argv(args: string): string[] {
  if (args.startsWith("[")) {
    const parsed: unknown = JSON.parse(args);
    if (Array.isArray(parsed) && parsed.every((a) => typeof a === "string")) return parsed;
  }
  return args.split(/\s+/).filter((a) => a !== "");
}

function isAllowAll(token: string): boolean {
  return token === "--allow-all" || token.startsWith("--allow-all=") ||
    /^-[A-Za-z]*A[A-Za-z]*$/.test(token);
}

function permissionFlags(args: string[]): string[] {
  return args.filter((a) => /^--(allow|deny)-/.test(a) || isAllowAll(a)).sort();
}

/** The flags of `deno run` that are not permissions, such as --v8-flags. */
function otherFlags(args: string[]): string[] {
  const run = args.indexOf("run");
  const script = args.findIndex((a, i) => i > run && !a.startsWith("-"));
  return args.slice(run + 1, script).filter((a) => !permissionFlags([a]).length).sort();
}

/** Everything wrong with the Dockerfile, given the `start` task it must run like. */
function checkDockerfile(text: string, start: string[], denoVersion: string): Problem[] {
  const problems: Problem[] = [];
  const all = parseDockerfile(text);
  const lastFrom = all.findLastIndex((i) => i.keyword === "FROM");
  const stage = all.slice(Math.max(lastFrom, 0)); // the final stage: what the image runs
  const last = (keyword: string) => stage.findLast((i) => i.keyword === keyword);
  const indexOf = (found: Instruction | undefined) => found ? stage.indexOf(found) : -1;

  const image = lastFrom < 0
    ? undefined
    : argv(all[lastFrom].args).find((a) => !a.startsWith("--"));
  const tag = image?.match(/^denoland\/deno:(?:[a-z]+-)?(\d+\.\d+\.\d+)(?:@sha256:[0-9a-f]{64})?$/);
  if (!tag) {
    problems.push({ code: "base", message: `base image ${image} is not a pinned denoland/deno` });
  } else if (tag[1] !== denoVersion) {
    problems.push({ code: "base", message: `base image has Deno ${tag[1]}, tests ${denoVersion}` });
  }

  const cmd = last("CMD");
  const cache = stage.find((i) =>
    i.keyword === "RUN" && /\bdeno\s+(install|cache)\b/.test(i.args) && /--frozen\b/.test(i.args)
  );
  const lockCopied = stage.findIndex((i) =>
    (i.keyword === "COPY" || i.keyword === "ADD") &&
    argv(i.args).filter((a) => !a.startsWith("--")).slice(0, -1).some((source) =>
      ["deno.lock", "./deno.lock", ".", "./"].includes(source)
    )
  );
  if (!cache || indexOf(cache) > indexOf(cmd)) {
    problems.push({ code: "cache", message: "no `deno install|cache --frozen` step before CMD" });
  } else if (lockCopied < 0 || lockCopied > indexOf(cache)) {
    problems.push({
      code: "cache",
      message: "the dependency step runs before deno.lock is copied",
    });
  }

  const user = last("USER")?.args.split(":")[0];
  if (user === undefined || user === "root" || user === "0") {
    problems.push({ code: "user", message: `the image runs as ${user ?? "root (no USER)"}` });
  }

  for (const { keyword, args } of all) {
    if (args.split(/[\s"'[\],]+/).some(isAllowAll)) {
      problems.push({ code: "allow-all", message: `${keyword} grants all permissions` });
    }
  }

  const health = last("HEALTHCHECK");
  if (!health || !/\bCMD\b/.test(health.args) || !health.args.includes("/healthz")) {
    problems.push({ code: "healthcheck", message: "no HEALTHCHECK that requests /healthz" });
  }

  const env = new Map<string, string>();
  for (const { args } of stage.filter((i) => i.keyword === "ENV")) {
    for (const [, key, value] of args.matchAll(/(\w+)=("[^"]*"|\S*)/g)) {
      env.set(key, value.replace(/^"|"$/g, ""));
    }
  }
  const port = env.get("PORT") ?? "8000";
  const exposed = stage.filter((i) => i.keyword === "EXPOSE").flatMap((i) => argv(i.args));
  if (!exposed.some((p) => p === port || p === `${port}/tcp`)) {
    problems.push({ code: "expose", message: `port ${port} is not exposed` });
  }

  for (const word of start.slice(0, start.indexOf("deno"))) {
    const at = word.indexOf("=");
    if (env.get(word.slice(0, at)) !== word.slice(at + 1)) {
      problems.push({ code: "env", message: `the start task sets ${word}, the image does not` });
    }
  }
  // The embedded database's directory, where the README tells users to mount a volume.
  const workdir = last("WORKDIR")?.args ?? "/";
  const dataDir = new URL(env.get("DATA_DIR") ?? "./data", `file://${workdir.replace(/\/?$/, "/")}`)
    .pathname.replace(/\/$/, "");
  const volumes = stage.filter((i) => i.keyword === "VOLUME").flatMap((i) => argv(i.args));
  if (!volumes.some((v) => v.replace(/\/$/, "") === dataDir)) {
    problems.push({ code: "volume", message: `no VOLUME at the data directory ${dataDir}` });
  }
  const command = [...argv(last("ENTRYPOINT")?.args ?? "[]"), ...argv(cmd?.args ?? "[]")];
  const run = command.indexOf("run");
  const script = command.slice(run + 1).find((a) => !a.startsWith("-"));
  if (!cmd?.args.startsWith("[")) {
    // Shell form puts /bin/sh in front of deno, and SIGTERM would not reach the service.
    problems.push({ code: "cmd", message: "no CMD in exec form" });
  } else if (run < 0 || (run > 0 && command[run - 1] !== "deno") || script !== start.at(-1)) {
    problems.push({ code: "cmd", message: `CMD does not run ${start.at(-1)}: ${command}` });
  } else if (
    permissionFlags(command).join(" ") !== permissionFlags(start).join(" ")
  ) {
    problems.push({
      code: "cmd",
      message: `CMD grants ${permissionFlags(command)}, the start task ${permissionFlags(start)}`,
    });
  } else if (otherFlags(command).join(" ") !== otherFlags(start).join(" ")) {
    problems.push({
      code: "cmd",
      message: `CMD runs with ${otherFlags(command)}, the start task with ${otherFlags(start)}`,
    });
  }
  return problems;
}

const dockerfile = await Deno.readTextFile(new URL("../Dockerfile", import.meta.url));
// The start task's words as `deno task start` runs them in the image, with its DATA_DIR.
const imageDataDir = dockerfile.match(/\bDATA_DIR=(\S+)/)?.[1] ?? "./data";
const startTask = await startTaskWords({ DATA_DIR: imageDataDir });
const check = (text: string) => checkDockerfile(text, startTask, Deno.version.deno);

function mutated(from: string | RegExp, to: string): string {
  const text = dockerfile.replace(from, to);
  assert.notEqual(text, dockerfile, `the Dockerfile no longer contains ${from}`);
  return text;
}

Deno.test("Dockerfile pins the base, caches dependencies, runs as deno with the start task's permissions, and checks /healthz", () => {
  assert.deepEqual(check(dockerfile), []);
});

Deno.test("the start task the Dockerfile is compared with grants narrow permissions to main.ts", () => {
  assert.ok(!startTask.some(isAllowAll));
  assert.match(
    startTask.join(" "),
    /^(\w+=\S+ )*deno run (--v8-flags=\S+ )?(--(allow|deny)-\S+ )+main\.ts$/,
  );
});

Deno.test("Dockerfile check fails an unpinned or foreign base image", () => {
  const codes = (text: string) => check(text).map((p) => p.code);
  assert.deepEqual(codes(mutated(/^FROM .*$/m, "FROM denoland/deno:latest")), ["base"]);
  assert.deepEqual(codes(mutated(/^FROM .*$/m, "FROM denoland/deno")), ["base"]);
  assert.deepEqual(codes(mutated(/^FROM .*$/m, "FROM node:20")), ["base"]);
  assert.deepEqual(codes(mutated(/^FROM .*$/m, "FROM denoland/deno:1.46.3")), ["base"]);
});

Deno.test("Dockerfile check fails when dependencies are not cached from the lockfile", () => {
  const noCache = mutated(/^RUN deno install.*$/gm, "");
  assert.deepEqual(check(noCache).map((p) => p.code), ["cache"]);
  const unfrozen = mutated(/--frozen/g, "");
  assert.deepEqual(check(unfrozen).map((p) => p.code), ["cache"]);
  const lockLater = mutated("COPY deno.json deno.lock ./", "COPY deno.json ./");
  assert.deepEqual(check(lockLater).map((p) => p.code), ["cache"]);
  const lockNever = lockLater.replace("COPY . .", "COPY main.ts ingest/ ./");
  assert.deepEqual(check(lockNever).map((p) => p.code), ["cache"]);
});

Deno.test("Dockerfile check fails an image that runs as root", () => {
  assert.deepEqual(check(mutated(/^USER .*$/m, "")).map((p) => p.code), ["user"]);
  assert.deepEqual(check(mutated(/^USER .*$/m, "USER root")).map((p) => p.code), ["user"]);
  assert.deepEqual(check(mutated(/^USER .*$/m, "USER 0:0")).map((p) => p.code), ["user"]);
});

Deno.test("Dockerfile check fails -A or --allow-all anywhere", () => {
  const inRun = mutated("RUN deno install --frozen --entrypoint", "RUN deno cache -A --frozen");
  assert.deepEqual(check(inRun).map((p) => p.code), ["allow-all"]);
  const inHealth = mutated("--allow-net=127.0.0.1", "--allow-all");
  assert.deepEqual(check(inHealth).map((p) => p.code), ["allow-all"]);
  const inCmd = mutated('"--allow-sys", ', '"--allow-sys", "-A", ');
  assert.deepEqual(check(inCmd).map((p) => p.code), ["allow-all", "cmd"]);
});

Deno.test("Dockerfile check fails without a HEALTHCHECK on /healthz", () => {
  const none = mutated(/^HEALTHCHECK[^]*?\n\n/m, "");
  assert.deepEqual(check(none).map((p) => p.code), ["healthcheck"]);
  const elsewhere = mutated("/healthz", "/readyz");
  assert.deepEqual(check(elsewhere).map((p) => p.code), ["healthcheck"]);
});

Deno.test("Dockerfile check fails when the service's port is not exposed", () => {
  assert.deepEqual(check(mutated(/^EXPOSE .*$/m, "")).map((p) => p.code), ["expose"]);
  assert.deepEqual(check(mutated(/^EXPOSE .*$/m, "EXPOSE 9000")).map((p) => p.code), ["expose"]);
  const moved = mutated("PORT=8000", "PORT=9000");
  assert.deepEqual(check(moved).map((p) => p.code), ["expose"]);
});

Deno.test("Dockerfile check fails a CMD that differs from the start task", () => {
  const codes = (text: string) => check(text).map((p) => p.code);
  assert.deepEqual(codes(mutated('"--allow-sys", ', "")), ["cmd"]);
  assert.deepEqual(codes(mutated('"--allow-sys", ', '"--allow-sys", "--allow-run", ')), ["cmd"]);
  assert.deepEqual(codes(mutated('"--allow-write=./data"', '"--allow-write"')), ["cmd"]);
  assert.deepEqual(codes(mutated('"main.ts"]', '"ingest/demo_feed_main.ts"]')), ["cmd"]);
  assert.deepEqual(codes(mutated(/"--v8-flags=[^"]*", /, "")), ["cmd"]);
  assert.deepEqual(codes(mutated(/^CMD \[.*$/m, "CMD deno task start")), ["cmd"]);
  assert.deepEqual(codes(mutated(/^CMD \[.*$/m, "")), ["cache", "cmd"]);
});

Deno.test("Dockerfile check fails an image that lacks the start task's environment", () => {
  const codes = (text: string) => check(text).map((p) => p.code);
  assert.deepEqual(codes(mutated("    MALLOC_ARENA_MAX=2 \\\n", "")), ["env"]);
  assert.deepEqual(codes(mutated("MALLOC_ARENA_MAX=2", "MALLOC_ARENA_MAX=8")), ["env"]);
});

Deno.test("Dockerfile check fails without a VOLUME at the embedded database's directory", () => {
  assert.deepEqual(check(mutated(/^VOLUME .*$/m, "")).map((p) => p.code), ["volume"]);
  const elsewhere = mutated(/^VOLUME .*$/m, "VOLUME /data");
  assert.deepEqual(check(elsewhere).map((p) => p.code), ["volume"]);
});

Deno.test("the README's container section mounts a volume where the image keeps embedded data", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  assert.match(readme, /docker run [^\n]*-v [\w.-]+:\/app\/data /);
});
