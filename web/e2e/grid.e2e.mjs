// The reference grid end to end, in Debian's Chromium driven by
// playwright-core, against the local server (APP_URL) serving the app at
// /app/ and the API on the same origin. Every handle is an accessible name
// from DESIGN.md. Exits non-zero on the first failed step, naming it.
//
//   APP_URL=http://127.0.0.1:8080 node web/e2e/grid.e2e.mjs
//   SCREENSHOTS=docs/screenshots also writes the main states as PNGs.

import { mkdirSync } from "node:fs";
import { launch } from "./browser.mjs";

const base = process.env.APP_URL;
if (!base) throw new Error("APP_URL is not set");
const shots = process.env.SCREENSHOTS || "";
const STEP_MS = 30_000;

const browser = await launch();
let failed = false;
const step = async (name, body) => {
  const started = Date.now();
  try {
    await body();
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    console.log(`FAIL ${name}: ${error.message.split("\n").slice(0, 4).join(" | ")}`);
    failed = true;
    throw error;
  }
};
const assert = (condition, message) => {
  if (!condition) throw new Error(message);
};

/** The API as another operator, outside the browser. */
async function api(method, path, body, key, roles) {
  const headers = { "x-dev-operator": "e2e-other", "x-dev-treaties": "*", "content-type": "application/json" };
  if (roles) headers["x-dev-roles"] = roles;
  if (key) headers["idempotency-key"] = key;
  const response = await fetch(base + path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  return { status: response.status, json: await response.json() };
}

try {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  context.setDefaultTimeout(STEP_MS);
  const page = await context.newPage();
  const keys = [];
  page.on("request", (r) => {
    if (r.method() === "POST" && r.url().endsWith("/v1/clearances")) keys.push(r.headers()["idempotency-key"] ?? "");
  });
  const grid = page.getByRole("grid");
  const cell = (row, column) => grid.locator(`[row-index="${row}"] [col-id="${column}"]`).first();
  const form = page.locator("form.search");
  const search = page.getByRole("button", { name: "Search", exact: true });
  /** Runs `action` and waits for the page read whose URL holds every part. */
  const pageRead = (parts, action) =>
    Promise.all([
      page.waitForResponse((r) => r.url().includes("/pages/") && parts.every((p) => r.url().includes(p))),
      action(),
    ]);
  const cents = (text) => BigInt(text.replace(/[,.]/g, "")) * (text.includes(".") ? 1n : 100n);
  const snap = async (name) => {
    if (!shots) return;
    mkdirSync(shots, { recursive: true });
    await page.screenshot({ path: `${shots}/${name}.png` });
  };
  const filled = async (row, column) => {
    await cell(row, column).filter({ hasText: /\S/ }).waitFor();
    return cell(row, column).innerText();
  };

  await step("search the heavy treaty", async () => {
    await page.goto(`${base}/app/`);
    await form.getByLabel("Operator").fill("e2e-op");
    await form.getByLabel("Treaty").fill("TR-0001");
    await form.getByLabel("Period from").fill("2021-01");
    await form.getByLabel("Period to").fill("2025-12");
    await form.getByLabel("Currency").selectOption("USD");
    const [answer] = await Promise.all([page.waitForResponse((r) => r.url().endsWith("/v1/searches")), search.click()]);
    const searched = await answer.json();
    assert(searched.row_count > 1000, `the heavy treaty: ${searched.row_count} rows`);
    await grid.getByRole("columnheader", { name: "Amount" }).waitFor();
    await filled(0, "amount");
    const totals = await page.getByLabel("View totals").innerText();
    assert(totals.includes(searched.totals[0].amount), `the totals bar shows the view's totals: ${totals}`);
    await snap("grid");
  });

  await step("sort by amount, then by date with shift", async () => {
    await pageRead(["sort=amount%3Aasc"], () => grid.getByRole("columnheader", { name: "Amount" }).click());
    const amounts = [];
    for (const row of [0, 1, 2, 3]) amounts.push(cents(await filled(row, "amount")));
    assert(amounts.every((a, i) => i === 0 || amounts[i - 1] <= a), `ascending amounts: ${amounts}`);
    await pageRead(["sort=amount%3Aasc%2Ctxn_date%3Aasc"], () =>
      grid.getByRole("columnheader", { name: "Date" }).click({ modifiers: ["Shift"] }),
    );
  });

  let staleRow = "";
  await step("filter one cedent and positive amounts in the column filters", async () => {
    await pageRead(["cedent_id=CED-002"], () => page.getByRole("textbox", { name: "Cedent Filter Input" }).fill("CED-002"));
    await pageRead(["cedent_id=CED-002", "amount_min=0.01"], () =>
      page.getByRole("textbox", { name: "Amount Filter Input" }).fill("0.01"),
    );
    for (const row of [0, 1, 2]) {
      assert((await filled(row, "cedent_id")) === "CED-002", "the view holds CED-002 only");
      assert(cents(await filled(row, "amount")) >= 1n, "the view holds positive amounts only");
    }
    staleRow = await filled(0, "id");
  });

  await step("a 422 names the mismatch; the corrected check clears at once (201)", async () => {
    for (const row of [1, 2]) await grid.locator(`[row-index="${row}"] input[type="checkbox"]`).first().check();
    await page.getByLabel("Selection totals").getByText("Selected 2 rows").waitFor();
    await page.getByRole("button", { name: "Mark Cleared" }).click();
    const dialog = page.getByRole("dialog", { name: "Mark Cleared" });
    const total = await dialog.getByLabel("Check amount").inputValue();
    await dialog.getByLabel("Check number").fill("CHK-E2E-SYNC");
    await dialog.getByLabel("Check amount").fill("1.00");
    await dialog.getByRole("button", { name: "Clear", exact: true }).click();
    await dialog.getByRole("alert").getByText("amount_mismatch").waitFor();
    await dialog.getByLabel("Check amount").fill(total);
    await dialog.getByRole("button", { name: "Clear", exact: true }).click();
    await dialog.getByText(/Cleared 2 rows, .* clearance [0-9a-f-]{36}/).waitFor();
    assert(keys.length === 2 && keys[0] !== keys[1], `one Idempotency-Key per body: ${keys}`);
    assert(keys.every((k) => /^[0-9a-f-]{36}$/.test(k)), `keys are UUIDs: ${keys}`);
    await dialog.getByRole("button", { name: "Close" }).click();
  });

  await step("a row another operator cleared: refused as stale, the banner, Search again", async () => {
    const theirs = await api("POST", "/v1/searches", {
      treaty_ids: ["TR-0001"],
      period_from: "2021-01",
      period_to: "2025-12",
      currency: "USD",
    });
    assert(theirs.status === 200, `their search: ${theirs.status}`);
    const view = await api("GET", `/v1/searches/${theirs.json.snapshot_id}/pages/0?cedent_id=CED-002&amount_min=0.01&sort=amount%3Aasc%2Ctxn_date%3Aasc`);
    const target = view.json.rows.find((r) => r.id === staleRow);
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
    await dialog.getByRole("button", { name: "Clear", exact: true }).click();
    await dialog.getByRole("alert").getByText("rows moved since your search").waitFor();
    await snap("stale-refusal");
    await dialog.getByRole("button", { name: "Close" }).click();
    // The next page read says stale: the banner offers a new search.
    await pageRead(["sort=amount%3Adesc"], () => grid.getByRole("columnheader", { name: "Amount" }).click());
    const banner = page.getByRole("status").filter({ hasText: "The ledger moved" });
    await banner.waitFor();
    const [again] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith("/v1/searches")),
      banner.getByRole("button", { name: "Search again" }).click(),
    ]);
    const fresh = await again.json();
    assert(fresh.snapshot_id !== theirs.json.snapshot_id, "a new snapshot");
    await banner.waitFor({ state: "detached" });
  });

  await step("a closer closes a row's period: Mark Cleared is refused with the period, the new search shows it", async () => {
    const period = await filled(0, "accounting_period");
    const path = `/v1/treaties/TR-0001/periods/${period}`;
    const closed = await api("POST", `${path}/close`, { reason: "e2e: period reconciled" }, `e2e-close-${Date.now()}`, "closer");
    assert(closed.status === 200 && closed.json.state === "closed", `the close: ${closed.status} ${JSON.stringify(closed.json)}`);
    await grid.locator(`[row-index="0"] input[type="checkbox"]`).first().check();
    await page.getByLabel("Selection totals").getByText("Selected 1 rows").waitFor();
    await page.getByRole("button", { name: "Mark Cleared" }).click();
    const dialog = page.getByRole("dialog", { name: "Mark Cleared" });
    await dialog.getByLabel("Check number").fill("CHK-E2E-CLOSED");
    await dialog.getByRole("button", { name: "Clear", exact: true }).click();
    const alert = dialog.getByRole("alert");
    await alert.getByText("period_closed").waitFor();
    assert((await alert.innerText()).includes(`Closed periods: ${period}`), `the alert names the period: ${await alert.innerText()}`);
    await dialog.getByRole("button", { name: "Close" }).click();
    // The close moved the treaty: the next page read says stale, and the
    // new search shows the period closed.
    await pageRead([], () => grid.getByRole("columnheader", { name: "Amount" }).click());
    const banner = page.getByRole("status").filter({ hasText: "The ledger moved" });
    const [again] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith("/v1/searches")),
      banner.getByRole("button", { name: "Search again" }).click(),
    ]);
    const fresh = await again.json();
    assert(fresh.closed_periods.some((c) => c.period === period), `the search shows ${period} closed`);
    await page.getByLabel("Closed periods").getByText(`TR-0001 ${period}`).waitFor();
    const reopened = await api("POST", `${path}/reopen`, { reason: "e2e: reopened for the batch" }, `e2e-reopen-${Date.now()}`, "closer");
    assert(reopened.status === 200 && reopened.json.state === "open", `the reopen: ${reopened.status}`);
  });

  await step("select all in view and Mark Cleared as a batch, progress to succeeded", async () => {
    // The new snapshot keeps the grid's filters: its view is read again.
    assert((await filled(0, "cedent_id")) === "CED-002", "the filters carry over to the new snapshot");
    for (const row of [0, 1, 2]) assert((await filled(row, "id")) !== staleRow, "the cleared rows are not in the new view");
    await page.getByRole("button", { name: "Select all in view" }).click();
    const totals = page.getByLabel("Selection totals");
    await totals.getByText("runs as a job").waitFor();
    assert(!(await totals.innerText()).includes("not open"), "every row of the open view is open");
    await page.getByRole("button", { name: "Mark Cleared" }).click();
    const dialog = page.getByRole("dialog", { name: "Mark Cleared" });
    await dialog.getByLabel("Check number").fill("CHK-E2E-BATCH");
    assert((await dialog.getByLabel("Check currency").inputValue()) === "USD", "the currency is prefilled");
    assert(/^\d{4}-\d{2}-\d{2}$/.test(await dialog.getByLabel("Received on").inputValue()), "today by default");
    await dialog.getByRole("button", { name: "Clear", exact: true }).click();
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
