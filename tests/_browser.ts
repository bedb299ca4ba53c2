import puppeteer, { type Browser, type Page } from "puppeteer-core";

const CHROMIUM = "/usr/bin/chromium";

/** Headless Chromium with nothing of its own reaching the network. */
export async function launchBrowser(): Promise<Browser> {
  try {
    await Deno.stat(CHROMIUM);
  } catch {
    throw new Error(`${CHROMIUM} is missing: install it with "apt-get install -y chromium"`);
  }
  return await puppeteer.launch({
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
}

/**
 * Records what `page` asks of anything but `origin` (and aborts it), and
 * every error it logs or throws.
 */
export async function watchPage(
  page: Page,
  origin: string,
): Promise<{ foreign: string[]; problems: string[] }> {
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
  return { foreign, problems };
}
