// The baseline of bench:api: a Hono hello-world on Deno.serve. PORT is its port.
import { Hono } from "hono";

const app = new Hono().get("/", (c) => c.text("hi"));
Deno.serve(
  { hostname: "127.0.0.1", port: Number(Deno.env.get("PORT")), onListen: () => {} },
  app.fetch,
);
