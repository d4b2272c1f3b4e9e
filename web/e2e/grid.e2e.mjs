// The reference grid end to end, in Debian's Chromium driven by
// playwright-core, against the local server (APP_URL) serving the app at
// /app/ and the API on the same origin. Every handle is an accessible name
// from DESIGN.md. Exits non-zero on the first failed step, naming it.
//
//   APP_URL=http://127.0.0.1:8080 node web/e2e/grid.e2e.mjs
//   SCREENSHOTS=docs/screenshots also writes the main states as PNGs.

import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const base = process.env.APP_URL;
if (!base) throw new Error("APP_URL is not set");
const shots = process.env.SCREENSHOTS || "";
const STEP_MS = 30_000;

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
let failed = false;
const step = async (name, body) => {
  const started = Date.now();
  try {
    await body();
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    console.log(`FAIL ${name}: ${error.message.split("\n")[0]}`);
    failed = true;
    throw error;
  }
};
const assert = (condition, message) => {
  if (!condition) throw new Error(message);
};

/** The API as another operator, outside the browser. */
async function api(method, path, body, key) {
  const headers = { "x-dev-operator": "e2e-other", "x-dev-treaties": "*", "content-type": "application/json" };
  if (key) headers["idempotency-key"] = key;
  const response = await fetch(base + path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  return { status: response.status, json: await response.json() };
}

try {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  context.setDefaultTimeout(STEP_MS);
  const page = await context.newPage();
  const pageRequests = [];
  page.on("request", (r) => {
    if (r.url().includes("/pages/")) pageRequests.push(decodeURIComponent(r.url()));
  });
  const lastPageRequest = () => pageRequests[pageRequests.length - 1] ?? "";
  const grid = page.getByRole("grid");
  const cell = (row, column) => grid.locator(`[row-index="${row}"] [col-id="${column}"]`).first();
  const snap = async (name) => {
    if (!shots) return;
    mkdirSync(shots, { recursive: true });
    await page.screenshot({ path: `${shots}/${name}.png` });
  };

  await step("search the heavy treaty", async () => {
    await page.goto(`${base}/app/`);
    await page.getByLabel("Operator").fill("e2e-op");
    await page.getByLabel("Treaty").fill("TR-0001");
    await page.getByLabel("Period from").fill("2021-01");
    await page.getByLabel("Period to").fill("2025-12");
    await page.getByLabel("Currency").selectOption("USD");
    await page.getByRole("button", { name: "Search" }).click();
    await grid.getByRole("columnheader", { name: "Amount" }).waitFor();
    await cell(0, "amount").waitFor();
    const totals = await page.getByLabel("View totals").innerText();
    assert(/USD/.test(totals), `the totals bar shows the view's totals: ${totals}`);
    await snap("grid");
  });

  await step("sort by amount, then by date with shift", async () => {
    await grid.getByRole("columnheader", { name: "Amount" }).click();
    await page.waitForFunction(() => true);
    await page.waitForResponse((r) => r.url().includes("sort=amount%3Aasc"));
    await cell(0, "amount").waitFor();
    const amounts = [];
    for (const row of [0, 1, 2]) amounts.push(Number((await cell(row, "amount").innerText()).replace(/,/g, "")));
    assert(amounts[0] <= amounts[1] && amounts[1] <= amounts[2], `ascending amounts: ${amounts}`);
    await grid.getByRole("columnheader", { name: "Date" }).click({ modifiers: ["Shift"] });
    await page.waitForResponse((r) => r.url().includes("sort=amount%3Aasc%2Ctxn_date%3Aasc"));
  });

  let staleRow = "";
  await step("filter one cedent and positive amounts in the column filters", async () => {
    await page.getByRole("textbox", { name: "Cedent Filter Input" }).fill("CED-002");
    await page.waitForResponse((r) => r.url().includes("cedent_id=CED-002"));
    await page.getByRole("textbox", { name: "Amount Filter Input" }).fill("0.01");
    await page.waitForResponse((r) => r.url().includes("amount_min=0.01"));
    await cell(0, "cedent_id").waitFor();
    assert((await cell(0, "cedent_id").innerText()) === "CED-002", "the view holds CED-002 only");
    staleRow = await cell(0, "id").innerText();
    assert(lastPageRequest().includes("cedent_id=CED-002"), lastPageRequest());
  });

  await step("a row another operator cleared is refused as stale, and Search again", async () => {
    const theirs = await api("POST", "/v1/searches", {
      treaty_ids: ["TR-0001"],
      period_from: "2021-01",
      period_to: "2025-12",
      currency: "USD",
    });
    assert(theirs.status === 200, `their search: ${theirs.status}`);
    const row = await api("GET", `/v1/searches/${theirs.json.snapshot_id}/pages/0?cedent_id=CED-002&amount_min=0.01&sort=amount%3Aasc%2Ctxn_date%3Aasc`);
    const target = row.json.rows.find((r) => r.id === staleRow);
    assert(target, "the other operator sees the same row");
    const cleared = await api(
      "POST",
      "/v1/clearances",
      {
        snapshot_id: theirs.json.snapshot_id,
        version_token: theirs.json.version_token,
        selection: { ids: [staleRow] },
        check: { number: "CHK-OTHER", amount: target.amount, currency: "USD", received_on: "2024-07-01" },
      },
      `e2e-other-${Date.now()}`,
    );
    assert(cleared.status === 201, `their clearance: ${cleared.status} ${JSON.stringify(cleared.json)}`);
    await grid.locator(`[row-index="0"] input[type="checkbox"]`).first().check();
    await page.getByLabel("Selection totals").getByText("Selected 1 rows").waitFor();
    await page.getByRole("button", { name: "Mark Cleared" }).click();
    const dialog = page.getByRole("dialog", { name: "Mark Cleared" });
    await dialog.getByLabel("Check number").fill("CHK-E2E-STALE");
    assert((await dialog.getByLabel("Check amount").inputValue()) === target.amount, "the amount is prefilled");
    await dialog.getByRole("button", { name: "Clear" }).click();
    await dialog.getByRole("alert").getByText("rows moved since your search").waitFor();
    await snap("stale-refusal");
    await dialog.getByRole("button", { name: "Search again" }).click();
    await dialog.waitFor({ state: "detached" });
    await cell(0, "amount").waitFor();
  });

  await step("select all in view and Mark Cleared as a batch, progress to succeeded", async () => {
    await page.getByRole("textbox", { name: "Cedent Filter Input" }).fill("CED-002");
    await page.waitForResponse((r) => r.url().includes("cedent_id=CED-002") && r.url().includes("amount_min=0.01"));
    await cell(0, "cedent_id").waitFor();
    await page.getByRole("button", { name: "Select all in view" }).click();
    const totals = page.getByLabel("Selection totals");
    await totals.getByText("runs as a job").waitFor();
    const text = await totals.innerText();
    assert(!text.includes(staleRow), text);
    await page.getByRole("button", { name: "Mark Cleared" }).click();
    const dialog = page.getByRole("dialog", { name: "Mark Cleared" });
    await dialog.getByLabel("Check number").fill("CHK-E2E-BATCH");
    assert((await dialog.getByLabel("Check currency").inputValue()) === "USD", "the currency is prefilled");
    assert(/^\d{4}-\d{2}-\d{2}$/.test(await dialog.getByLabel("Received on").inputValue()), "today by default");
    await dialog.getByRole("button", { name: "Clear" }).click();
    await dialog.getByRole("progressbar").waitFor();
    await dialog.getByText(/succeeded: clearance [0-9a-f-]{36}/).waitFor({ timeout: 60_000 });
    await snap("batch-succeeded");
    const status = await dialog.getByRole("status").innerText();
    const clearance = status.match(/clearance ([0-9a-f-]{36})/)?.[1];
    const record = await fetch(`${base}/v1/clearances/${clearance}`, {
      headers: { "x-dev-operator": "e2e-op", "x-dev-treaties": "*" },
    }).then((r) => r.json());
    assert(record.state === "posted" && record.row_count > 200, `the clearance: ${JSON.stringify(record).slice(0, 200)}`);
  });
} catch {
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
