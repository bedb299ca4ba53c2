import { z } from "@hono/zod-openapi";
import {
  CONTROL_CHARACTER,
  EXCERPT_CHARS,
  isTooLongStudentId,
  MAX_EXAM,
  MAX_STUDENT_ID_CHARS,
} from "../db/mod.ts";
import { INGEST_DESCRIPTIONS as INGEST } from "./ingest_stats.ts";

/**
 * A decimal integer parameter: digits only (no sign, exponent, fraction or
 * spaces), so that "1.5", "1e3", "-1" and " 1" are malformed rather than
 * coerced into something else.
 */
function integerParam(min: number, max: number, meta: { description: string }) {
  const message = `must be an integer from ${min} to ${max}`;
  return z.string()
    .regex(/^[0-9]{1,10}$/, message)
    .transform(Number)
    .refine((n) => n >= min && n <= max, message)
    .openapi({ type: "integer", minimum: min, maximum: max, ...meta });
}

/** `param`, taking `value` when absent: one default, for the handler and the document. */
function withDefault<S extends z.ZodType>(param: S, value: z.util.NoUndefined<z.output<S>>) {
  return param.default(value).openapi({ default: value });
}

// Control characters and lone surrogates cannot be in a stored studentId:
// those are refused as malformed, what else ingest refuses is only not found.
const isStudentIdLike = (s: string) =>
  s.isWellFormed() && !CONTROL_CHARACTER.test(s) && !isTooLongStudentId(s);

function studentIdParam(description: string) {
  const message = `must be 1 to ${MAX_STUDENT_ID_CHARS} characters with no control characters`;
  return z.string()
    .min(1, message)
    .max(MAX_STUDENT_ID_CHARS * 2, message)
    .refine(isStudentIdLike, message)
    .openapi({
      minLength: 1,
      maxLength: MAX_STUDENT_ID_CHARS,
      description,
      example: "Logan_Harber74",
    });
}

export const examPath = z.object({
  exam: integerParam(0, MAX_EXAM, { description: "An exam number." }).openapi({
    param: { name: "exam", in: "path" },
    example: 1559,
  }),
});

export const studentPath = z.object({
  studentId: studentIdParam("A studentId.").openapi({
    param: { name: "studentId", in: "path" },
  }),
});

export const examStudentPath = examPath.extend(studentPath.shape);

/** Results per page of a list of results when `limit` is not given. */
export const PAGE_LIMIT = 1000;

/** The query of a route that takes no parameters: any parameter is refused. */
export const noQuery = z.strictObject({});

/** The query of a paginated list; `after` is the last key of the previous page. */
export function pageQuery<A extends z.ZodType>(
  after: A,
  { defaultLimit, maxLimit }: { defaultLimit: number; maxLimit: number },
) {
  return z.strictObject({
    limit: withDefault(
      integerParam(1, maxLimit, { description: `Page size, at most ${maxLimit}.` }),
      defaultLimit,
    ),
    after: after.optional(),
  });
}

export const examCursor = integerParam(0, MAX_EXAM, {
  description: "The last exam of the previous page (its `next`).",
});
export const studentCursor = studentIdParam(
  "The last studentId of the previous page (its `next`).",
);
export const studentPrefix = studentIdParam(
  "Only studentIds that start with this, compared character for character (case matters).",
).openapi({ example: "Logan" });

const resultCursorMessage = 'must be "<studentId>:<exam>", the `next` of a page';

/** The key of a result in the list of all: `<studentId>:<exam>`, split at the last colon. */
export const resultCursor = z.string()
  .transform((text, ctx) => {
    const colon = text.lastIndexOf(":");
    const studentId = text.slice(0, colon);
    const exam = text.slice(colon + 1);
    const valid = colon > 0 && /^[0-9]{1,10}$/.test(exam) && Number(exam) <= MAX_EXAM &&
      isStudentIdLike(studentId);
    if (!valid) {
      ctx.addIssue({ code: "custom", message: resultCursorMessage });
      return z.NEVER;
    }
    return { studentId, exam: Number(exam) };
  })
  .openapi({
    type: "string",
    description: "The last result of the previous page (its `next`): `<studentId>:<exam>`.",
    example: "Logan_Harber74:1559",
  });

export const histogramQuery = z.strictObject({
  bins: withDefault(
    integerParam(1, 100, { description: "Number of equal-width bins over [0, 1]." }),
    10,
  ),
});

export const topQuery = z.strictObject({
  n: withDefault(integerParam(1, 100, { description: "How many results." }), 10),
});

export const trendQuery = z.strictObject({
  last: withDefault(integerParam(2, 100, { description: "How many of the latest exams." }), 10),
});

/** The filters and options of `GET /events`. */
export const eventsQuery = z.strictObject({
  exam: integerParam(0, MAX_EXAM, { description: "Only this exam's results." }).optional(),
  studentId: studentIdParam("Only this student's results.").optional(),
  snapshot: z.enum(["true", "false"]).default("false").transform((v) => v === "true").openapi({
    type: "boolean",
    default: false,
    description: "First every stored result that matches, then `live`, then changes.",
  }),
});

const studentId = z.string().openapi({ example: "Logan_Harber74" });
const exam = z.number().int().openapi({ example: 1559 });
const score = z.number().openapi({ description: "In [0, 1], exactly as received.", example: 0.81 });
const count = z.number().int().openapi({ example: 12 });
const average = z.number().openapi({ description: "Mean of all the scores.", example: 0.73 });

export const StudentSummary = z.object({ studentId, count, average }).openapi("StudentSummary");

export const StudentPage = z.object({
  students: z.array(StudentSummary),
  next: studentId.nullable().openapi({
    description: "The `after` of the next page; null on the last page.",
  }),
}).openapi("StudentPage");

export const StudentResults = z.object({
  studentId,
  count: count.openapi({ description: "All of the student's results, not just this page." }),
  average,
  results: z.array(z.object({ exam, score })).openapi({ description: "By exam number." }),
  next: exam.nullable().openapi({ description: "The `after` of the next page, or null." }),
}).openapi("StudentResults");

export const StudentTrend = z.object({
  studentId,
  count: count.openapi({ description: "All of the student's results, not just the latest." }),
  average: average.openapi({ description: "Mean of all of the student's results." }),
  results: z.array(z.object({ exam, score })).openapi({
    description: "The latest exams (highest numbers), oldest first.",
  }),
  recentCount: count.openapi({
    description: "How many results `results` holds: `last`, or all when fewer.",
    example: 3,
  }),
  recentAverage: average.openapi({ description: "Mean of the results in `results` alone." }),
  slope: z.number().nullable().openapi({
    description: "Least-squares change in score from one of these exams to the next; " +
      "null with a single result.",
    example: 0.012,
  }),
}).openapi("StudentTrend");

export const ResultPage = z.object({
  results: z.array(z.object({ studentId, exam, score }).openapi("Result")).openapi({
    description: "By studentId in UTF-8 byte order, then by exam.",
  }),
  next: z.string().nullable().openapi({
    description: "The `after` of the next page, or null.",
    example: "Logan_Harber74:1559",
  }),
}).openapi("ResultPage");

export const ExamSummary = z.object({ exam, count, average }).openapi("ExamSummary");

export const ExamPage = z.object({
  exams: z.array(ExamSummary),
  next: exam.nullable().openapi({ description: "The `after` of the next page, or null." }),
}).openapi("ExamPage");

export const ExamResults = z.object({
  exam,
  count: count.openapi({ description: "All of the exam's results, not just this page." }),
  average,
  results: z.array(z.object({ studentId, score })).openapi({
    description: "By studentId in UTF-8 byte order. A page also ends early " +
      "once it passes about 1 MiB; follow `next`.",
  }),
  next: studentId.nullable().openapi({ description: "The `after` of the next page, or null." }),
}).openapi("ExamResults");

export const ExamHistogram = z.object({
  exam,
  count,
  bins: z.array(z.object({ from: z.number(), to: z.number(), count })).openapi({
    description: "Bins [from, to); the last one also holds scores of exactly 1.",
  }),
}).openapi("ExamHistogram");

export const ExamTop = z.object({
  exam,
  count: count.openapi({ description: "All of the exam's results." }),
  top: z.array(z.object({ studentId, score })).openapi({
    description: "Best first; equal scores by studentId.",
  }),
}).openapi("ExamTop");

export const ExamStanding = z.object({
  exam,
  studentId,
  score,
  rank: z.number().int().openapi({
    description: "1 + the number of better scores.",
    example: 3,
  }),
  count: count.openapi({ description: "All of the exam's results." }),
  percentile: z.number().openapi({
    description: "Percentage of the exam's results at or below this score, to 2 decimals.",
    example: 99.4,
  }),
}).openapi("ExamStanding");

const LastError = z.object({
  error: z.string().openapi({ example: "fetch failed: ECONNREFUSED connecting to feed:8001" }),
  at: z.string().openapi({ description: "When, ISO 8601.", example: "2026-11-27T10:00:00.000Z" }),
}).nullable();

export const LastErrors = z.object({
  feed: LastError.openapi({ description: "The feed's last failure; null until one." }),
  database: LastError.openapi({ description: "The database's last failure; null until one." }),
}).openapi("LastErrors", { description: "The last failures, without secrets." });

/** A cursor of the quarantine: a row's `id`, a decimal int8. */
export const quarantineCursor = z.string()
  .regex(/^[0-9]{1,18}$/, "must be the id of a quarantined event")
  .openapi({ description: "The `id` of the last event of the previous page (its `next`)." });

export const QuarantinePage = z.object({
  events: z.array(
    z.object({
      id: z.string().openapi({ description: "The key of this rejection, a decimal integer." }),
      receivedAt: z.string().openapi({
        description: "When it was stored, ISO 8601.",
        example: "2026-12-02T06:31:45.123456+00:00",
      }),
      eventId: z.string().nullable().openapi({
        description: `The event's SSE id, its first ${EXCERPT_CHARS} characters; null without one.`,
      }),
      reason: z.string().openapi({ example: "score out of range" }),
      excerpt: z.string().openapi({
        description: `The first ${EXCERPT_CHARS} characters of the event's data.`,
      }),
    }).openapi("QuarantinedEvent"),
  ).openapi({ description: "Newest first." }),
  next: z.string().nullable().openapi({ description: "The `after` of the next page, or null." }),
}).openapi("QuarantinePage");

export const Stats = z.object({
  students: count.nullable().openapi({ description: "null while the database is unreachable." }),
  exams: count.nullable(),
  results: count.nullable(),
  quarantined: z.record(z.string(), z.number().int()).nullable().openapi({
    description: "The events stored in the quarantine (GET /quarantine), by reason code (the " +
      "text of `reason` before its first `: `), whoever " +
      "stored them; null while the database is unreachable. `ingest.rejectedByReason` " +
      "counts this instance's rejections since it started.",
    example: { invalid_json: 3, invalid_score: 1 },
  }),
  ingest: z.object({
    role: z.enum(["leader", "standby", "api"]).openapi({ description: INGEST.role }),
    epoch: z.number().int().nullable().openapi({ description: INGEST.epoch }),
    leader: z.object({
      instance: z.string(),
      since: z.string().openapi({ format: "date-time" }),
    }).nullable().openapi({ description: INGEST.leader }),
    takeovers: z.number().int().openapi({ description: INGEST.takeovers }),
    fenced: z.number().int().openapi({ description: INGEST.fenced }),
    state: z.string().openapi({ description: INGEST.state, example: "open" }),
    received: z.number().int().openapi({ description: INGEST.received }),
    applied: z.number().int().openapi({ description: INGEST.applied }),
    rejected: z.number().int().openapi({ description: INGEST.rejected }),
    rejectedByReason: z.record(z.string(), z.number().int()).openapi({
      description: INGEST.rejectedByReason,
    }),
    ignored: z.number().int().openapi({ description: INGEST.ignored }),
    reconnects: z.number().int().openapi({ description: INGEST.reconnects }),
    lastEventId: z.string().nullable(),
    lagMs: z.number().nullable().openapi({ description: INGEST.lagMs }),
    checkpointAgeMs: z.number().nullable().openapi({ description: INGEST.checkpointAgeMs }),
    queueDepth: z.array(z.number().int()).openapi({ description: INGEST.queueDepth }),
    stuck: z.object({
      reason: z.string().openapi({ example: "writer 0 cannot commit: 42501: permission denied" }),
      since: z.string().openapi({ format: "date-time" }),
    }).nullable().openapi({ description: INGEST.stuck }),
  }).nullable().openapi({
    description: "null when this instance keeps no ingest statistics. Histograms are in /metrics.",
  }),
  events: z.object({
    subscribers: z.number().int().openapi({ description: "Streams of /events open now." }),
    opened: z.number().int().openapi({ description: "Streams opened since start." }),
    sent: z.number().int().openapi({ description: "`result` events sent, snapshots included." }),
    slow: z.number().int().openapi({
      description: "Subscribers disconnected because they did not read their events.",
    }),
    resets: z.number().int().openapi({
      description: "Resumes whose cursor had left the retained window (sent a reset).",
    }),
    refused: z.number().int().openapi({ description: "Streams refused: too many subscribers." }),
  }).nullable().openapi({ description: "The change stream (GET /events) of this instance." }),
  lastErrors: LastErrors,
}).openapi("Stats");

export const Status = z.object({ status: z.string().openapi({ example: "ok" }) }).openapi(
  "Status",
);

export const Problem = z.object({
  type: z.string().openapi({ example: "about:blank" }),
  title: z.string().openapi({ example: "Bad Request" }),
  status: z.number().int().openapi({ example: 400 }),
  detail: z.string().openapi({
    example: 'Invalid path parameter "exam": must be an integer from 0 to 2147483647',
  }),
  requestId: z.string().optional(),
}).openapi("Problem", { description: "An RFC 9457 problem." });
