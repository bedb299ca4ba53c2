import assert from "node:assert/strict";
import { launchBrowser, watchPage } from "../_browser.ts";
import { createApi } from "../../api/mod.ts";
import type { Queries } from "../../db/mod.ts";

Deno.test("GET /docs renders the routes offline in headless Chromium", async () => {
  const app = createApi({ queries: {} as Queries, ready: () => Promise.resolve(true) });
  await using server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: () => {} },
    app.fetch,
  );
  const origin = `http://127.0.0.1:${server.addr.port}`;
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    // Anything the page asks of another origin fails and is recorded.
    const { foreign, problems } = await watchPage(page, origin);

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
