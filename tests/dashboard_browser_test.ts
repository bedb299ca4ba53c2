import assert from "node:assert/strict";
import { launchBrowser, watchPage } from "./_browser.ts";
import type { Page } from "puppeteer-core";
import { serveFeed } from "./_feed_server.ts";
import { type Service, startService } from "./_service.ts";
import { until } from "./_wait.ts";

const ARTIFACTS = new URL("./artifacts/", import.meta.url);
const SCREENSHOT = new URL("../docs/dashboard.png", import.meta.url);

/**
 * A feed the test controls: `events` first (after the Last-Event-ID the
 * service resumes from), then whatever `push()` sends, on the open streams.
 */
function controlledFeed(events: string[]) {
  const encoder = new TextEncoder();
  const open = new Set<ReadableStreamDefaultController<Uint8Array>>();
  const frame = (data: string, id: number) => `id: ${id}\nevent: score\ndata: ${data}\n\n`;
  const server = serveFeed((request) => {
    const after = Number(request.headers.get("last-event-id") ?? "-1");
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        controller = c;
        open.add(c);
        c.enqueue(encoder.encode(
          "retry: 100\n\n" +
            events.map((data, id) => id > after ? frame(data, id) : "").join(""),
        ));
      },
      cancel: () => void open.delete(controller),
    });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  });
  return {
    server,
    push(data: string) {
      events.push(data);
      for (const c of open) c.enqueue(encoder.encode(frame(data, events.length - 1)));
    },
    close() {
      for (const c of open) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      return server.close();
    },
  };
}

const score = (x: number) => x.toFixed(4);
const integer = (n: number) => n.toLocaleString("en-US");

function seedFeed(): string[] {
  let state = 7;
  const random = () => (state = (state * 1103515245 + 12345) % 2147483648) / 2147483648;
  const events: string[] = [];
  for (let n = 0; n < 40; n++) {
    for (const exam of [7, 8, 100 + (n % 5)]) {
      events.push(JSON.stringify({ exam, studentId: `Student_${n}`, score: random() * 0.9 }));
    }
  }
  events.push(
    "{not json",
    JSON.stringify({ exam: 7, studentId: "Bad", score: 2 }),
    JSON.stringify({ exam: -1, studentId: "Bad", score: 0.5 }),
    "[1, 2]",
  );
  return events;
}

/** An element as the page shows it (this file has no DOM types). */
type Shown = { textContent: string };

async function text(page: Page, selector: string): Promise<string> {
  await page.waitForSelector(selector);
  return await page.$eval(selector, (e) => (e as unknown as Shown).textContent.trim());
}

/** The rows of a table as text, without its header. */
async function rows(page: Page, selector: string): Promise<string[][]> {
  await page.waitForSelector(selector);
  return await page.$$eval(
    `${selector} tbody tr`,
    (trs) =>
      trs.map((tr) => [...tr.children].map((td) => (td as unknown as Shown).textContent.trim())),
  );
}

async function waitForText(page: Page, selector: string, expected: string) {
  let seen = "";
  await until(
    () => `${selector} to read ${expected}, not ${seen}`,
    async () => (seen = await text(page, selector)) === expected,
    20_000,
  );
}

Deno.test("the dashboard shows what the API says on every view, live, offline, without errors", async () => {
  const feed = controlledFeed(seedFeed());
  const dataDir = `./data/test-${crypto.randomUUID()}`;
  let service: Service | undefined;
  const browser = await launchBrowser();
  try {
    service = await startService({
      SCORES_URL: feed.server.url,
      DATA_DIR: dataDir,
      DATABASE_URL: "",
      WRITERS: "2",
    });
    const total = 40 * 3;
    const s = service;
    await s.waitFor((stats) => stats.results === total && stats.ingest.rejected === 4, 60_000);
    await Deno.mkdir(ARTIFACTS, { recursive: true });

    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    const { foreign, problems } = await watchPage(page, s.url);
    const shoot = async (name: string) => {
      for (const [width, height, suffix] of [[1280, 900, "desktop"], [390, 844, "phone"]]) {
        await page.setViewport({ width: width as number, height: height as number });
        await new Promise((resolve) => setTimeout(resolve, 300));
        await page.screenshot({
          path: new URL(`dashboard-${name}-${suffix}.png`, ARTIFACTS).pathname as `${string}.png`,
          fullPage: true,
        });
      }
      await page.setViewport({ width: 1280, height: 900 });
    };

    // The service view: totals, role and quarantine counts as /stats has them.
    await page.goto(`${s.url}/`, { waitUntil: "networkidle0" });
    await waitForText(page, "#stat-results", integer(total));
    const stats = await s.json<{
      students: number;
      exams: number;
      quarantined: Record<string, number>;
      ingest: { role: string; state: string };
    }>("/stats");
    assert.equal(await text(page, "#stat-students"), integer(stats.students));
    assert.equal(await text(page, "#stat-exams"), integer(stats.exams));
    assert.equal(await text(page, "#stat-role"), stats.ingest.role);
    assert.equal(await text(page, "#stat-state"), stats.ingest.state);
    const reasons = Object.entries(stats.quarantined);
    assert.equal(reasons.reduce((n, [, c]) => n + c, 0), 4);
    assert.deepEqual(await rows(page, "#reasons"), [
      ...reasons.map(([reason, count]) => [reason, integer(count)]),
      ["total", "4"],
    ]);
    assert.match(await text(page, "#live"), /polling every 2 s/);
    // A third reading draws the chart's first line.
    await page.waitForSelector("figure.chart canvas");
    await new Promise((resolve) => setTimeout(resolve, 4_500));
    await page.setViewport({ width: 1100, height: 760 });
    await page.screenshot({ path: SCREENSHOT.pathname as `${string}.png` });
    await shoot("service");

    // The exams: every exam's count and average.
    await page.click('nav a[href="#/exams"]');
    const exams = (await s.json<{ exams: { exam: number; count: number; average: number }[] }>(
      "/exams?limit=50",
    )).exams;
    await until(() => "the exams table", async () => (await rows(page, "#exams")).length > 0);
    assert.deepEqual(
      await rows(page, "#exams"),
      exams.map((e) => [String(e.exam), integer(e.count), score(e.average)]),
    );
    await shoot("exams");

    // An exam: its totals, top 10 and distribution, then a new result arrives.
    await page.click('a[href="#/exams/7"]');
    const exam = await s.json<{ count: number; average: number }>("/exams/7?limit=1");
    await waitForText(page, "#exam-count", integer(exam.count));
    assert.equal(await text(page, "#exam-average"), score(exam.average));
    const top = (await s.json<{ top: { studentId: string; score: number }[] }>("/exams/7/top"))
      .top;
    assert.deepEqual(
      await rows(page, "#top-table"),
      top.map((t, i) => [String(i + 1), t.studentId, score(t.score)]),
    );
    const bins = (await s.json<{ bins: { count: number }[] }>("/exams/7/histogram?bins=20")).bins;
    assert.deepEqual(
      (await rows(page, "#bins-table")).map((r) => r[1]),
      bins.map((b) => integer(b.count)),
    );
    await page.waitForSelector("figure.chart canvas");
    await shoot("exam");

    const marker = await page.evaluate(() =>
      (globalThis as unknown as { marker: number }).marker = 1
    );
    feed.push(JSON.stringify({ exam: 7, studentId: "Newcomer", score: 0.99 }));
    await waitForText(page, "#exam-count", integer(exam.count + 1));
    await until(
      () => "Newcomer at the top",
      async () => (await rows(page, "#top-table"))[0]?.[1] === "Newcomer",
      20_000,
    );
    assert.equal((await rows(page, "#top-table"))[0][2], score(0.99));
    assert.equal((await rows(page, "#bins-table")).at(-1)![1], integer(bins.at(-1)!.count + 1));
    assert.equal(
      await page.evaluate(() => (globalThis as unknown as { marker: number }).marker),
      marker,
      "without a reload",
    );

    // A student: search by prefix, then their page.
    await page.click('nav a[href="#/students"]');
    await page.waitForSelector("#prefix");
    await page.type("#prefix", "Student_1");
    await page.keyboard.press("Enter");
    const found =
      (await s.json<{ students: { studentId: string; count: number; average: number }[] }>(
        "/students?limit=50&prefix=Student_1",
      )).students;
    await until(() => "search results", async () => (await page.$("#students")) !== null);
    assert.deepEqual(
      await rows(page, "#students"),
      found.map((f) => [f.studentId, integer(f.count), score(f.average)]),
    );
    await shoot("search");
    await page.click('a[href="#/students/Student_12"]');
    const student = await s.json<
      { count: number; average: number; results: { exam: number; score: number }[] }
    >(
      "/students/Student_12",
    );
    await waitForText(page, "#student-count", integer(student.count));
    assert.equal(await text(page, "#student-average"), score(student.average));
    assert.deepEqual(
      await rows(page, "#results"),
      student.results.map((r) => [String(r.exam), score(r.score)]),
    );
    await page.waitForSelector("figure.chart canvas");
    await shoot("student");

    // The quarantine, newest first.
    await page.click('nav a[href="#/quarantine"]');
    const quarantined = (await s.json<
      { events: { reason: string; eventId: string | null; excerpt: string }[] }
    >("/quarantine?limit=50")).events;
    await until(() => "the quarantine table", async () => (await page.$("#quarantine")) !== null);
    assert.deepEqual(
      (await rows(page, "#quarantine")).map((r) => r.slice(1)),
      quarantined.map((q) => [q.reason, q.eventId ?? "none", q.excerpt]),
    );
    await shoot("quarantine");

    // The keyboard reaches the views: the skip link, then the navigation.
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate("document.activeElement?.textContent"), "Skip to content");

    assert.deepEqual(foreign, [], "the page loads nothing from outside the service");
    assert.deepEqual(problems, [], "the page logs no errors (CSP included)");
  } finally {
    await browser.close();
    await service?.stop();
    await feed.close();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
});
