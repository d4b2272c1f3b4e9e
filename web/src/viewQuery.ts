// AG Grid's sort and filter models as the grid API's view parameters
// (DESIGN.md, "The grid's API"): the same view the server builds from the
// snapshot, and the same filter a "Select all in view" selection names.
// Money stays a decimal string end to end: the amount column filters with
// text inputs, never the number filter (which parses to a float).

import type { ViewFilter } from "./api";

export type SortModelItem = { colId: string; sort: "asc" | "desc" | null | undefined };

type TextModel = { filterType: "text"; type?: string | null; filter?: string | null; filterTo?: string | null };
type DateModel = { filterType: "date"; type?: string | null; dateFrom?: string | null; dateTo?: string | null };
export type FilterModel = Record<string, TextModel | DateModel | { filterType: string }>;

/** Most sort keys the API takes. */
export const SORT_KEYS_MAX = 3;

/** Sortable columns: their ids are the API's field names. */
export const SORTABLE = new Set([
  "accounting_period",
  "txn_date",
  "amount",
  "cedent_id",
  "currency",
  "reference",
  "treaty_id",
  "status",
]);

/** `sort=f1:asc,f2:desc` from the grid's sort model (the first 3 keys). */
export function sortParam(model: SortModelItem[]): string | undefined {
  const keys = model
    .filter((m) => m.sort && SORTABLE.has(m.colId))
    .slice(0, SORT_KEYS_MAX)
    .map((m) => `${m.colId}:${m.sort}`);
  return keys.length ? keys.join(",") : undefined;
}

const day = (value?: string | null) => (value ? value.slice(0, 10) : undefined);
const text = (value?: string | null) => {
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
};

/** The view's filter from the grid's filter model. */
export function viewFilter(model: FilterModel): ViewFilter {
  const view: ViewFilter = {};
  for (const [column, raw] of Object.entries(model)) {
    if (raw.filterType === "date") {
      const m = raw as DateModel;
      const from = day(m.dateFrom);
      const to = day(m.type === "inRange" ? m.dateTo : m.dateFrom);
      if (m.type === "greaterThanOrEqual" || m.type === "inRange" || m.type === "equals") view.txn_date_from = from;
      if (m.type === "lessThanOrEqual") view.txn_date_to = from;
      if (m.type === "inRange" || m.type === "equals") view.txn_date_to = to;
      continue;
    }
    const m = raw as TextModel;
    const value = text(m.filter);
    if (value === undefined) continue;
    switch (column) {
      case "cedent_id":
        view.cedent_id = value.split(",").map((c) => c.trim()).filter(Boolean);
        break;
      case "currency":
        view.currency = value.toUpperCase();
        break;
      case "reference":
        view.reference = value;
        break;
      case "accounting_period":
        view.period_from = value;
        view.period_to = text(m.type === "between" ? m.filterTo : m.filter);
        break;
      case "amount":
        if (m.type === "atLeast" || m.type === "between") view.amount_min = value;
        if (m.type === "atMost") view.amount_max = value;
        if (m.type === "between") view.amount_max = text(m.filterTo);
        break;
    }
  }
  return Object.fromEntries(Object.entries(view).filter(([, v]) => v !== undefined)) as ViewFilter;
}

/** The page query: sort and the filter, in a stable order. */
export function pageQuery(sort: string | undefined, view: ViewFilter): string {
  const params = new URLSearchParams();
  if (sort) params.set("sort", sort);
  for (const [name, value] of Object.entries(view).sort(([a], [b]) => a.localeCompare(b))) {
    params.set(name, Array.isArray(value) ? value.join(",") : String(value));
  }
  return params.toString();
}
