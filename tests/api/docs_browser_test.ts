import assert from "node:assert/strict";
import puppeteer from "puppeteer-core";
import { createApi } from "../../api/mod.ts";
import type { Queries } from "../../db/mod.ts";

const CHROMIUM = "/usr/bin/chromium";

Deno.test("GET /docs renders the routes offline in headless Chromium", async () => {
  try {
    await Deno.stat(CHROMIUM);
  } catch {
    throw new Error(`${CHROMIUM} is missing: install it with "apt-get install -y chromium"`);
  }
  const app = createApi({ queries: {} as Queries, ready: () => Promise.resolve(true) });
  await using server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: () => {} },
    app.fetch,
  );
  const origin = `http://127.0.0.1:${server.addr.port}`;
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  try {
    const page = await browser.newPage();
    // Anything the page asks of another origin fails and is recorded.
    const foreign: string[] = [];
    const problems: string[] = [];
    await page.setRequestInterception(true);
    page.on("request", (request) => {
      if (request.url().startsWith(origin) || request.url().startsWith("data:")) {
        request.continue();
      } else {
        foreign.push(request.url());
        request.abort();
      }
    });
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(message.text());
    });
    page.on("pageerror", (error) => problems.push(String(error)));

    const response = await page.goto(`${origin}/docs`, { waitUntil: "networkidle0" });
    assert.equal(response?.status(), 200);
    await page.waitForSelector(".opblock-summary-path", { timeout: 15_000 });
    const text = await page.evaluate("document.body.innerText") as string;
    for (
      const route of [
        "/students",
        "/students/{studentId}",
        "/exams/{exam}",
        "/exams/{exam}/histogram",
        "/stats",
        "/metrics",
      ]
    ) {
      assert.ok(text.includes(route), `the page shows ${route}`);
    }
    assert.ok(text.includes("scorestream API"));
    const screenshot = await page.screenshot({ fullPage: false, type: "png" });
    assert.ok(screenshot.length > 10_000, "the screenshot has content");
    assert.deepEqual(foreign, [], "the page loads nothing from outside the service");
    assert.deepEqual(problems, [], "the page logs no errors (CSP included)");
  } finally {
    await browser.close();
  }
});
