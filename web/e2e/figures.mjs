// The reference grid's figures (`make bench`), in Debian's headless
// Chromium driven by playwright-core against APP_URL (the local server with
// the app at /app/): Search click -> first rows painted, cold (a new
// snapshot) and cached (the same search again); scroll to page 50 -> its
// rows painted. Prints one JSON object; medians are taken by the caller.
//
//   APP_URL=http://127.0.0.1:8080 TREATY=TR-0003 RUNS=3 node web/e2e/figures.mjs

import { launch } from "./browser.mjs";

const base = process.env.APP_URL;
if (!base) throw new Error("APP_URL is not set");
const treaty = process.env.TREATY || "TR-0003";
const runs = Number(process.env.RUNS || 3);
const SCROLL_ROW = Number(process.env.SCROLL_ROW || 50 * 1000);

const browser = await launch();

/**
 * Times, inside the page, from `trigger` to the frame after row `index`
 * shows its amount: a click on the button named `button`, or a scroll of
 * the grid's body to row `index`. When row `index` shows an amount already
 * (the last search's rows), it first waits for the grid to drop it. Checked
 * at every animation frame, so the figure is the page's, not the driver's.
 */
async function timed(page, trigger) {
  return page.evaluate(async ({ button, scrollTo, index }) => {
    const frame = () => new Promise((resolve) => requestAnimationFrame(() => resolve(null)));
    const shown = () => {
      const el = document.querySelector(`[row-index="${index}"] [col-id="amount"]`);
      return Boolean(el && /\d/.test(el.textContent || ""));
    };
    const stale = shown();
    const started = performance.now();
    if (button) {
      const target = [...document.querySelectorAll("button")].find((b) => b.textContent?.trim() === button);
      if (!target) throw new Error(`no button ${button}`);
      target.click();
    } else {
      const row = document.querySelector('[row-index="0"]');
      const height = row ? row.getBoundingClientRect().height : 42;
      // The body scrolls with the vertical scrollbar's viewport.
      for (const selector of [".ag-body-vertical-scroll-viewport", ".ag-body-viewport"]) {
        const viewport = document.querySelector(selector);
        if (viewport) viewport.scrollTop = scrollTo * height;
      }
    }
    const deadline = started + 60_000;
    // The last search's rows go when the new datasource is set (within a second).
    if (stale) while (shown() && performance.now() < started + 1_000) await frame();
    while (!shown()) {
      if (performance.now() > deadline) throw new Error(`row ${index} was not painted in 60 s`);
      await frame();
    }
    await frame();
    return performance.now() - started;
  }, trigger);
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
      const answered = page.waitForResponse((r) => r.url().endsWith("/v1/searches"));
      const took = await timed(page, { button: "Search", index: 0 });
      const search = await (await answered).json();
      if (kind === "cached" && search.cache !== "hit") throw new Error(`the second search was a ${search.cache}`);
      figures.rows = search.row_count;
      list.push(took);
    }
    figures.scroll_page_50_ms.push(await timed(page, { scrollTo: SCROLL_ROW, index: SCROLL_ROW }));
    await page.close();
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(figures));
