// No Docker engine or cluster runs here, so compose.yaml and deploy/kubernetes.yaml are
// checked on their text: against the Dockerfile (its port, its CMD) and the service's
// own promises (the routes, the shutdown time).
import assert from "node:assert/strict";
import { parse, parseAllDocuments } from "yaml";
import { createApi } from "../api/mod.ts";
import type { Queries } from "../db/mod.ts";
import { SHUTDOWN_MS } from "../main.ts";

const root = new URL("../", import.meta.url);
const read = (path: string) => Deno.readTextFile(new URL(path, root));

// deno-lint-ignore no-explicit-any
type Yaml = any;

/** The port the image listens on: its PORT, which it must EXPOSE (dockerfile_test.ts). */
async function imagePort(): Promise<number> {
  const dockerfile = await read("Dockerfile");
  const port = /^ENV[^\n]*\bPORT=(\d+)/m.exec(dockerfile.replace(/\\\n/g, " "))?.[1];
  assert.ok(port, "the Dockerfile sets PORT");
  assert.match(dockerfile, new RegExp(`^EXPOSE ${port}\\b`, "m"));
  return Number(port);
}

/** The routes the service answers, from its OpenAPI document. */
async function routes(): Promise<Set<string>> {
  const app = createApi({ queries: {} as Queries, ready: () => Promise.resolve(true) });
  const doc = await (await app.request("/openapi.json")).json();
  return new Set(Object.keys(doc.paths));
}

/** Seconds of a compose duration such as "15s" or "1m30s". */
function seconds(duration: string): number {
  let total = 0;
  for (const [, n, unit] of duration.matchAll(/(\d+)(h|m|s)/g)) {
    total += Number(n) * { h: 3600, m: 60, s: 1 }[unit as "h" | "m" | "s"];
  }
  return total;
}

/** The host of a postgres:// URL. */
const host = (url: string) => new URL(url).hostname;

Deno.test("compose.yaml runs two identical replicas on Postgres and an API-only one on its hot standby", async () => {
  const compose: Yaml = parse(await read("compose.yaml"));
  const port = await imagePort();
  const services = compose.services;
  const built = Object.entries(services).filter(([, s]: [string, Yaml]) => s.build !== undefined);
  assert.ok(built.length >= 2);
  for (const [name, service] of built as [string, Yaml][]) {
    assert.ok([".", "./"].includes(service.build), `${name} is built from the Dockerfile`);
    assert.equal(service.command, undefined, `${name} runs the image's CMD (the start task's)`);
    assert.equal(service.entrypoint, undefined, `${name} keeps the image's entrypoint`);
    assert.ok(
      service.ports.every((p: string | number) => String(p).split(":").at(-1) === String(port)),
      `${name} publishes the image's port ${port}`,
    );
    assert.ok(
      seconds(service.stop_grace_period ?? "10s") > SHUTDOWN_MS / 1000,
      `${name} has more than ${SHUTDOWN_MS} ms to stop`,
    );
  }

  const fleet = services.scorestream;
  assert.equal(fleet.deploy.replicas, 2);
  assert.equal(fleet.environment.ROLE ?? "all", "all", "the replicas are candidates");
  const primary = services[host(fleet.environment.DATABASE_URL)];
  assert.ok(primary, "the replicas' database is a service of the file");
  assert.match(primary.image, /^postgres:/);
  assert.ok(fleet.depends_on[host(fleet.environment.DATABASE_URL)]);

  const [, api] = built.find(([, s]: [string, Yaml]) => s.environment?.ROLE === "api") as [
    string,
    Yaml,
  ];
  const standbyName = host(api.environment.DATABASE_URL);
  const standby = services[standbyName];
  assert.ok(standby, "the API replica's database is a service of the file");
  const start = [standby.entrypoint, standby.command].flat().filter(Boolean).join(" ");
  assert.match(
    start,
    /pg_basebackup -h (\S+) [^\n]*-R\b/,
    "the standby copies the primary with -R",
  );
  assert.equal(/pg_basebackup -h (\S+)/.exec(start)?.[1], host(fleet.environment.DATABASE_URL));
  assert.match(start, /hot_standby=on/);
  const allow = Object.values(compose.configs ?? {}).map((c: Yaml) => c.content).join("\n");
  assert.match(allow, /host replication all/, "the primary accepts replication connections");
});

Deno.test("deploy/kubernetes.yaml runs 2 replicas probed on /readyz and /healthz, with time to drain", async () => {
  const docs = parseAllDocuments(await read("deploy/kubernetes.yaml")).map((d) => d.toJS());
  const deployment = docs.find((d: Yaml) => d.kind === "Deployment");
  assert.ok(deployment);
  assert.equal(deployment.spec.replicas, 2);
  assert.equal(deployment.spec.strategy.rollingUpdate.maxUnavailable, 0, "new pods first");
  const pod = deployment.spec.template.spec;
  const [container] = pod.containers;
  assert.equal(container.command, undefined, "the image's CMD (the start task's) runs");
  assert.equal(container.args, undefined);
  const port = await imagePort();
  const named = new Map(container.ports.map((p: Yaml) => [p.name, p.containerPort]));
  assert.deepEqual([...named.values()], [port]);
  const probePort = (probe: Yaml) => named.get(probe.httpGet.port) ?? probe.httpGet.port;
  const served = await routes();
  for (const [probe, path] of [["readinessProbe", "/readyz"], ["livenessProbe", "/healthz"]]) {
    assert.equal(container[probe].httpGet.path, path, probe);
    assert.equal(probePort(container[probe]), port, `${probe} asks the container's port`);
    assert.ok(served.has(path), `the service answers ${path}`);
  }
  const preStop = container.lifecycle.preStop.exec.command;
  assert.equal(preStop[0], "sleep");
  assert.ok(
    pod.terminationGracePeriodSeconds > Number(preStop[1]) + SHUTDOWN_MS / 1000,
    "the grace period covers preStop and the whole shutdown",
  );
  const env = new Map(container.env.map((e: Yaml) => [e.name, e]));
  assert.ok(env.has("DATABASE_URL"), "replicas share one database");
  assert.notEqual((env.get("ROLE") as Yaml)?.value, "api", "replicas are candidates");
  const service = docs.find((d: Yaml) => d.kind === "Service");
  assert.deepEqual(service.spec.selector, deployment.spec.selector.matchLabels);
});
