// The reference grid's figures (`make bench`), in Debian's headless
// Chromium driven by playwright-core against APP_URL (the local server with
// the app at /app/): Search click -> first rows painted, cold (a new
// snapshot) and cached (the same search again); scroll to page 50 -> its
// rows painted. Prints one JSON object; medians are taken by the caller.
//
//   APP_URL=http://127.0.0.1:8080 TREATY=TR-0003 RUNS=3 node web/e2e/figures.mjs

import { chromium } from "playwright-core";

const base = process.env.APP_URL;
if (!base) throw new Error("APP_URL is not set");
const treaty = process.env.TREATY || "TR-0003";
const runs = Number(process.env.RUNS || 3);
const SCROLL_ROW = 50 * 1000;

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

/** Waits until a row at `index` shows its amount, then for the next frame. */
async function painted(page, index) {
  await page
    .getByRole("grid")
    .locator(`[row-index="${index}"] [col-id="amount"]`)
    .filter({ hasText: /\d/ })
    .first()
    .waitFor({ timeout: 60_000 });
  await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => resolve(null))));
}

const figures = { treaty, rows: 0, cold_ms: [], cached_ms: [], scroll_page_50_ms: [] };
try {
  for (let run = 0; run < runs; run += 1) {
    const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    await page.goto(`${base}/app/`);
    await page.getByLabel("Operator").fill(`bench-browser-${process.pid}-${run}`);
    await page.getByLabel("Treaty").fill(treaty);
    await page.getByLabel("Period from").fill("2021-01");
    await page.getByLabel("Period to").fill("2025-12");
    for (const [kind, list] of [
      ["cold", figures.cold_ms],
      ["cached", figures.cached_ms],
    ]) {
      const started = Date.now();
      const answered = page.waitForResponse((r) => r.url().endsWith("/v1/searches"));
      // Page 0 of this search: until it is read, row 0 may still be the last search's.
      const read = page.waitForResponse((r) => r.url().includes("/pages/0"));
      await page.getByRole("button", { name: "Search", exact: true }).click();
      const search = await (await answered).json();
      if (kind === "cached" && search.cache !== "hit") throw new Error(`the second search was a ${search.cache}`);
      figures.rows = search.row_count;
      await read;
      await painted(page, 0);
      list.push(Date.now() - started);
    }
    const rowHeight = await page.evaluate(() => {
      const row = document.querySelector('[row-index="0"]');
      return row ? row.getBoundingClientRect().height : 42;
    });
    const started = Date.now();
    await page.evaluate(
      ([target, height]) => {
        // The body scrolls with the vertical scrollbar's viewport.
        for (const selector of [".ag-body-vertical-scroll-viewport", ".ag-body-viewport"]) {
          const viewport = document.querySelector(selector);
          if (viewport) viewport.scrollTop = target * height;
        }
      },
      [SCROLL_ROW, rowHeight],
    );
    await painted(page, SCROLL_ROW);
    figures.scroll_page_50_ms.push(Date.now() - started);
    await page.close();
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(figures));
