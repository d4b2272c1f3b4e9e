import { describe, expect, it } from "vitest";
import { pageQuery, sortParam, viewFilter } from "./viewQuery";

describe("the grid's models as view parameters", () => {
  it("keeps the first three sort keys in order", () => {
    expect(
      sortParam([
        { colId: "cedent_id", sort: "asc" },
        { colId: "amount", sort: "desc" },
        { colId: "txn_date", sort: "asc" },
        { colId: "reference", sort: "asc" },
      ]),
    ).toBe("cedent_id:asc,amount:desc,txn_date:asc");
    expect(sortParam([{ colId: "select", sort: "asc" }])).toBeUndefined();
  });

  it("maps every column filter to its parameter, money as text", () => {
    const view = viewFilter({
      cedent_id: { filterType: "text", type: "equals", filter: "CED-001, CED-002" },
      currency: { filterType: "text", type: "equals", filter: "usd" },
      amount: { filterType: "text", type: "between", filter: "1234567890123456.89", filterTo: "9999999999999999.99" },
      reference: { filterType: "text", type: "contains", filter: " 2024Q1 " },
      txn_date: { filterType: "date", type: "inRange", dateFrom: "2024-01-01 00:00:00", dateTo: "2024-03-31 00:00:00" },
      accounting_period: { filterType: "text", type: "equals", filter: "2024-02" },
    });
    expect(view).toEqual({
      cedent_id: ["CED-001", "CED-002"],
      currency: "USD",
      amount_min: "1234567890123456.89",
      amount_max: "9999999999999999.99",
      reference: "2024Q1",
      txn_date_from: "2024-01-01",
      txn_date_to: "2024-03-31",
      period_from: "2024-02",
      period_to: "2024-02",
    });
    expect(pageQuery("amount:desc", { currency: "USD", cedent_id: ["A", "B"] })).toBe(
      "sort=amount%3Adesc&cedent_id=A%2CB&currency=USD",
    );
  });

  it("drops empty inputs", () => {
    expect(viewFilter({ reference: { filterType: "text", type: "contains", filter: "  " } })).toEqual({});
  });
});
