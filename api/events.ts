import { createRoute, z } from "@hono/zod-openapi";
import { HTTPException } from "hono/http-exception";
import type { EventHub } from "./event_hub.ts";
import { createRouter, problemResponse } from "./_router.ts";
import { eventsQuery } from "./_schemas.ts";

const DESCRIPTION = `Every committed change of a stored result, as Server-Sent Events
(\`text/event-stream\`, as the browser's \`EventSource\` reads it):

    event: result
    id: 1a2b3c4d-74211-3
    data: {"studentId": "Logan_Harber74", "exam": 1559, "score": 0.81}

- **result**: a result was stored or changed. \`id\` is an opaque cursor. Within one
  commit, a result changed twice is sent once, with its final score; a re-sent equal
  score is left out. A student's changes arrive in the order they were applied; every
  subscriber sees all changes in one order, that of the transactions that made them.
- **live** (with \`snapshot=true\`): the results before it were every stored result the
  filters match, as of one moment (they carry no \`id\`); the changes after it are all
  those committed after that moment, none left out and none sent twice.
- **reset**: the \`Last-Event-ID\` was too old (outside the retained window) or of
  another database: a snapshot follows, as with \`snapshot=true\`, ending with \`live\`.
  A client starts again from an empty map.

**Resume**: a request with \`Last-Event-ID\` (EventSource sends it when it reconnects)
continues right after that cursor, without a gap, while the cursor is in the retained
window: the last EVENTS_RETAIN_MS (default 10 minutes) or the last
EVENTS_RETAIN_CHANGES (default 1,000,000) changes, whichever is fewer. Comment lines
come at least every 10 s, with an \`id\` that keeps a filtered stream's cursor current.

**Bounded**: a subscriber that stops reading is disconnected once EVENTS_BUFFER_BYTES
(default 4 MiB) wait for it; it can resume with its cursor. Every instance serves the
stream (leader, standby, \`ROLE=api\`, on a primary or a hot standby).`;

/** `GET /events`: the change stream. */
export function eventRoutes({ hub }: { hub: EventHub }) {
  return createRouter().openapi(
    createRoute({
      method: "get",
      path: "/events",
      tags: ["live"],
      summary: "Committed changes, live and resumable",
      description: DESCRIPTION,
      request: {
        query: eventsQuery,
        headers: z.object({
          "last-event-id": z.string().optional().openapi({
            description: "Continue after this cursor (the `id` of the last event received).",
          }),
        }),
      },
      responses: {
        200: {
          description: "The stream: `retry:` first, then `result`, `live` and `reset` events.",
          content: {
            "text/event-stream": {
              schema: z.string().openapi({
                example: "retry: 1000\n\nevent: result\nid: 1a2b3c4d-74211-3\n" +
                  'data: {"studentId":"Logan_Harber74","exam":1559,"score":0.81}\n\n',
              }),
            },
          },
        },
        400: problemResponse("A malformed parameter."),
        503: problemResponse("Too many subscribers, or the database cannot be read."),
      },
    }),
    async (c) => {
      const { exam, studentId, snapshot } = c.req.valid("query");
      const body = await hub.open({
        filter: { exam, studentId },
        snapshot,
        lastEventId: c.req.header("Last-Event-ID") || undefined,
      });
      if (!body) {
        throw new HTTPException(503, { message: "Too many subscribers to /events; retry later" });
      }
      return c.body(body, 200, {
        "Content-Type": "text/event-stream; charset=utf-8",
        "Cache-Control": "no-store",
        // nginx would otherwise hold events back in its buffer.
        "X-Accel-Buffering": "no",
      }) as never;
    },
  );
}
