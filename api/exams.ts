import { createRoute } from "@hono/zod-openapi";
import { HTTPException } from "hono/http-exception";
import type { Queries } from "../db/mod.ts";
import { type PageCache, versioned } from "./read_cache/mod.ts";

import { exportFormat, exportResults } from "./_export.ts";
import { createRouter, jsonText, ok, okOrExport, problemResponse, VARY_EXPORT } from "./_router.ts";
import {
  examCursor,
  ExamHistogram,
  ExamPage,
  examPath,
  ExamResults,
  ExamStanding,
  examStudentPath,
  ExamTop,
  histogramQuery,
  noQuery,
  PAGE_LIMIT,
  pageQuery,
  studentCursor,
  topQuery,
} from "./_schemas.ts";

const badRequest = problemResponse("A malformed exam number or parameter.");
const unknownExam = problemResponse("No such exam.");
const NO_EXAM = "No exam has this number";
const noSuchExam = () => new HTTPException(404, { message: NO_EXAM });

/** `/exams`, `/exams/{exam}` and what else is asked of one exam. */
export function examRoutes({ queries, cache }: { queries: Queries; cache: PageCache }) {
  return createRouter()
    .openapi(
      createRoute({
        method: "get",
        path: "/exams",
        tags: ["exams"],
        summary: "List exams",
        description: "Every exam with the count and average of all its results, by exam number.",
        request: { query: pageQuery(examCursor, { defaultLimit: 100, maxLimit: 1000 }) },
        responses: { 200: ok(ExamPage, "One page of exams."), 400: badRequest },
      }),
      async (c) => {
        const { after, limit } = c.req.valid("query");
        return jsonText(c, await queries.exams({ after, limit }));
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/exams/{exam}",
        tags: ["exams"],
        summary: "An exam's results and average",
        description: "The count and average cover all of the exam's results; `results` " +
          "is one page of them by studentId in UTF-8 byte order. Totals and page are " +
          "read in one snapshot. Send the ETag back in `If-None-Match` to get a 304 " +
          "while nothing changed. `Accept: text/csv` or `application/x-ndjson` streams " +
          "all of the results after `after` instead.",
        request: {
          params: examPath,
          query: pageQuery(studentCursor, { defaultLimit: PAGE_LIMIT, maxLimit: 10000 }),
        },
        responses: {
          200: okOrExport(ExamResults, "The exam's totals and one page of results."),
          304: { description: "Not modified since the ETag in If-None-Match." },
          400: badRequest,
          404: unknownExam,
        },
      }),
      (c) => {
        const { exam } = c.req.valid("param");
        const { after, limit } = c.req.valid("query");
        c.header("Vary", VARY_EXPORT);
        const format = exportFormat(c);
        if (format) {
          return exportResults(c, format, {
            read: (last, n) =>
              queries.results({ of: "exam", exam, after: last?.studentId ?? after }, n),
            limit,
            missing: async () => await queries.examVersion(exam) === null ? NO_EXAM : undefined,
          });
        }
        return versioned(c, cache, {
          dependency: `exam:${exam}`,
          page: { after, limit },
          version: () => queries.examVersion(exam),
          read: () => queries.exam(exam, { after, limit }),
          missing: NO_EXAM,
        });
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/exams/{exam}/histogram",
        tags: ["exams"],
        summary: "An exam's score distribution",
        request: { params: examPath, query: histogramQuery },
        responses: {
          200: ok(ExamHistogram, "How many scores fall in each bin."),
          400: badRequest,
          404: unknownExam,
        },
      }),
      async (c) => {
        const { exam } = c.req.valid("param");
        const { bins } = c.req.valid("query");
        const body = await queries.examHistogram(exam, bins);
        if (!body) throw noSuchExam();
        return jsonText(c, body);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/exams/{exam}/top",
        tags: ["exams"],
        summary: "An exam's best results",
        request: { params: examPath, query: topQuery },
        responses: {
          200: ok(ExamTop, "The n best results, best first."),
          400: badRequest,
          404: unknownExam,
        },
      }),
      async (c) => {
        const { exam } = c.req.valid("param");
        const { n } = c.req.valid("query");
        const body = await queries.examTop(exam, n);
        if (!body) throw noSuchExam();
        return jsonText(c, body);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/exams/{exam}/students/{studentId}",
        tags: ["exams"],
        summary: "A student's standing in an exam",
        description: "The student's score in the exam, their rank and percentile among " +
          "all of the exam's results.",
        request: { params: examStudentPath, query: noQuery },
        responses: {
          200: ok(ExamStanding, "The student's score, rank and percentile."),
          400: badRequest,
          404: problemResponse("No such exam, student, or result of the student in the exam."),
        },
      }),
      async (c) => {
        const { exam, studentId } = c.req.valid("param");
        const body = await queries.examStanding(exam, studentId);
        if (!body) {
          throw new HTTPException(404, { message: "This student has no result in this exam" });
        }
        return jsonText(c, body);
      },
    );
}
