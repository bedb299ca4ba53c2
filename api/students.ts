import { createRoute } from "@hono/zod-openapi";
import { HTTPException } from "hono/http-exception";
import type { Queries } from "../db/mod.ts";
import { type PageCache, versioned } from "./read_cache/mod.ts";

import { exportFormat, exportResults } from "./_export.ts";
import { createRouter, jsonText, ok, okOrExport, problemResponse, VARY_EXPORT } from "./_router.ts";
import {
  examCursor,
  PAGE_LIMIT,
  pageQuery,
  studentCursor,
  StudentPage,
  studentPath,
  studentPrefix,
  StudentResults,
  StudentTrend,
  trendQuery,
} from "./_schemas.ts";

const badRequest = problemResponse("A malformed parameter.");
const unknownStudent = problemResponse("No such student.");
const NO_STUDENT = "No student has this studentId";

/** `/students`, `/students/{studentId}` and what else is asked of one student. */
export function studentRoutes({ queries, cache }: { queries: Queries; cache: PageCache }) {
  return createRouter()
    .openapi(
      createRoute({
        method: "get",
        path: "/students",
        tags: ["students"],
        summary: "List students",
        description: "Every student with the count and average of all their results, " +
          "by studentId in UTF-8 byte order; with `prefix`, only those whose studentId " +
          "starts with it (a search), paged the same way.",
        request: {
          query: pageQuery(studentCursor, { defaultLimit: 100, maxLimit: 1000 }).extend({
            prefix: studentPrefix.optional(),
          }),
        },
        responses: { 200: ok(StudentPage, "One page of students."), 400: badRequest },
      }),
      async (c) => {
        const { after, limit, prefix } = c.req.valid("query");
        return jsonText(c, await queries.students({ after, limit, prefix }));
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/students/{studentId}",
        tags: ["students"],
        summary: "A student's results and average",
        description: "The count and average cover all of the student's results; " +
          "`results` is one page of them by exam. Totals and page are read in one " +
          "snapshot. Send the ETag back in `If-None-Match` to get a 304 while " +
          "nothing changed. `Accept: text/csv` or `application/x-ndjson` streams " +
          "all of the results after `after` instead.",
        request: {
          params: studentPath,
          query: pageQuery(examCursor, { defaultLimit: PAGE_LIMIT, maxLimit: 10000 }),
        },
        responses: {
          200: okOrExport(StudentResults, "The student's totals and one page of results."),
          304: { description: "Not modified since the ETag in If-None-Match." },
          400: badRequest,
          404: unknownStudent,
        },
      }),
      (c) => {
        const { studentId } = c.req.valid("param");
        const { after, limit } = c.req.valid("query");
        c.header("Vary", VARY_EXPORT);
        const format = exportFormat(c);
        if (format) {
          return exportResults(c, format, {
            read: (last, n) =>
              queries.results({ of: "student", studentId, after: last?.exam ?? after }, n),
            limit,
            missing: async () =>
              await queries.studentVersion(studentId) === null ? NO_STUDENT : undefined,
          });
        }
        return versioned(c, cache, {
          dependency: `student:${studentId}`,
          page: { after, limit },
          version: () => queries.studentVersion(studentId),
          read: () => queries.student(studentId, { after, limit }),
          missing: NO_STUDENT,
        });
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/students/{studentId}/trend",
        tags: ["students"],
        summary: "A student's trend over their latest exams",
        description: "The student's results in their `last` highest-numbered exams, " +
          "their average (`recentAverage`) and the least-squares slope of score over " +
          "them, beside the count and average of all of the student's results.",
        request: { params: studentPath, query: trendQuery },
        responses: {
          200: ok(StudentTrend, "The latest results and their trend."),
          400: badRequest,
          404: unknownStudent,
        },
      }),
      async (c) => {
        const { studentId } = c.req.valid("param");
        const { last } = c.req.valid("query");
        const body = await queries.studentTrend(studentId, last);
        if (!body) throw new HTTPException(404, { message: NO_STUDENT });
        return jsonText(c, body);
      },
    );
}
