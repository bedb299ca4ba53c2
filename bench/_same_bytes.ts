// The read limit of bench:api: a raw Deno.serve answering, from a Map, the very
// responses (status, headers, body bytes) captured from the service beforehand.
// PORT is its port; RESPONSES is the file written by `captureResponses`.
/** One captured response, as `captureResponses` writes it. */
export interface Captured {
  path: string;
  status: number;
  headers: [string, string][];
  body: string;
}

const captured: Captured[] = JSON.parse(await Deno.readTextFile(Deno.env.get("RESPONSES")!));
const responses = new Map(
  captured.map((r) => [r.path, { ...r, bytes: Uint8Array.fromBase64(r.body) }]),
);
Deno.serve(
  { hostname: "127.0.0.1", port: Number(Deno.env.get("PORT")), onListen: () => {} },
  (request) => {
    const url = request.url;
    const r = responses.get(url.slice(url.indexOf("/", 8)));
    if (!r) return new Response(null, { status: 404 });
    return new Response(r.bytes, { status: r.status, headers: r.headers });
  },
);
