// Serves the demo feed on its own: `deno task feed [--port 8001] [--host 127.0.0.1]
// [--rate 5] [--seed 1] [--total N]`, or the same settings as FEED_PORT, FEED_HOST,
// FEED_RATE, FEED_SEED and FEED_TOTAL; a flag wins over its variable.
import { parseArgs } from "node:util";
import { createDemoFeed } from "./demo_feed.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    port: { type: "string", default: Deno.env.get("FEED_PORT") ?? "8001" },
    host: { type: "string", default: Deno.env.get("FEED_HOST") ?? "127.0.0.1" },
    rate: { type: "string", default: Deno.env.get("FEED_RATE") ?? "5" },
    seed: { type: "string", default: Deno.env.get("FEED_SEED") ?? "1" },
    total: { type: "string", default: Deno.env.get("FEED_TOTAL") ?? "Infinity" },
  },
});

function numberOption(name: string, text: string): number {
  const value = Number(text);
  if (text.trim() === "" || Number.isNaN(value)) {
    throw new TypeError(`Cannot parse --${name} "${text}": not a number`);
  }
  return value;
}

const port = numberOption("port", values.port);
const rate = numberOption("rate", values.rate);
const seed = numberOption("seed", values.seed);
const total = numberOption("total", values.total);
const handler = createDemoFeed({ seed, rate, total });

Deno.serve({
  hostname: values.host,
  port,
  onListen: ({ hostname, port }) => {
    const pace = rate === 0 || rate === Infinity ? "as fast as read" : `${rate} events/s`;
    const end = total === Infinity ? "no end" : `${total} events`;
    console.log(`Demo feed on http://${hostname}:${port}/ (seed ${seed}, ${pace}, ${end})`);
  },
}, handler);
