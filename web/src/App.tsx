// The reference grid: search -> snapshot; the snapshot's views in AG
// Grid's infinite row model (one cache block = one API page of 1,000 rows);
// selection by rows or "all in view but these"; the selection summary; Mark
// Cleared. Accessible names are DESIGN.md's: the end-to-end tests use them.

import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { AgGridReact } from "ag-grid-react";
import {
  CellStyleModule,
  ColumnAutoSizeModule,
  DateFilterModule,
  InfiniteRowModelModule,
  ModuleRegistry,
  RowApiModule,
  RowSelectionModule,
  TextFilterModule,
  themeQuartz,
  type ColDef,
  type GridApi,
  type GridReadyEvent,
  type IDatasource,
  type IGetRowsParams,
  type RowSelectedEvent,
} from "ag-grid-community";
import {
  call,
  type Answer,
  type Identity,
  type Page,
  type Row,
  type Search,
  type Selection,
  type SelectionSummary,
  type Total,
  type ViewFilter,
} from "./api";
import { pageQuery, sortParam, viewFilter, type FilterModel, type SortModelItem } from "./viewQuery";
import { MarkCleared } from "./MarkCleared";

ModuleRegistry.registerModules([
  InfiniteRowModelModule,
  RowSelectionModule,
  CellStyleModule,
  RowApiModule,
  TextFilterModule,
  DateFilterModule,
  ColumnAutoSizeModule,
]);

const CURRENCIES = ["", "AUD", "BRL", "CAD", "CHF", "CNY", "DKK", "EUR", "GBP", "HKD", "INR", "JPY", "MXN", "NOK", "NZD", "SEK", "SGD", "USD", "ZAR"];

type Form = { operator: string; treaty: string; periodFrom: string; periodTo: string; status: string; currency: string };

/** What the operator selected: rows by id, or all of the view but some. */
type Picked = { mode: "ids"; ids: Set<string> } | { mode: "all"; view: ViewFilter; except: Set<string> };

const noneSelected = (): Picked => ({ mode: "ids", ids: new Set() });

export function selectionOf(picked: Picked): Selection | undefined {
  if (picked.mode === "ids") return picked.ids.size ? { ids: [...picked.ids].sort() } : undefined;
  return { all: true, view: picked.view, except: [...picked.except].sort() };
}

/** Whether the grid shows `row` ticked under `picked`. */
function ticked(picked: Picked, row: Row): boolean {
  if (row.status !== "open") return false;
  return picked.mode === "ids" ? picked.ids.has(row.id) : !picked.except.has(row.id);
}

/** A search as the grid holds it: the snapshot and who ran it (every call on it is theirs). */
type Searched = { result: Search; who: Identity };

/** The summary of one selection, named by the selection's own JSON. */
type Summarized = { key: string; summary: SelectionSummary };

const DEFAULT_COLUMN: ColDef<Row> = { sortable: true, resizable: true, width: 140 };
const ROW_SELECTION = {
  mode: "multiRow" as const,
  checkboxes: true,
  headerCheckbox: false,
  enableClickSelection: false,
  // A clearance takes open rows only: the others cannot be ticked.
  isRowSelectable: (node: { data?: Row }) => node.data?.status === "open",
};
const rowId = (p: { data: Row }) => p.data.id;

const amountText = (totals: Total[]) =>
  totals.length ? totals.map((t) => `${t.amount} ${t.currency} (${t.count.toLocaleString()})`).join(" · ") : "nothing";

const filterText = { filterOptions: ["contains"], maxNumConditions: 1 };
const filterEquals = { filterOptions: ["equals"], maxNumConditions: 1 };
// Text inputs for money (a decimal string, never a float); the predicate is
// the server's, these options only name the bound.
const amountFilter = {
  maxNumConditions: 1,
  filterOptions: [
    { displayKey: "atLeast", displayName: "at least", predicate: () => true, numberOfInputs: 1 },
    { displayKey: "atMost", displayName: "at most", predicate: () => true, numberOfInputs: 1 },
    { displayKey: "between", displayName: "between", predicate: () => true, numberOfInputs: 2 },
  ],
};

const COLUMNS: ColDef<Row>[] = [
  { field: "cedent_id", headerName: "Cedent", filter: "agTextColumnFilter", filterParams: filterEquals, floatingFilter: true },
  { field: "accounting_period", headerName: "Period", filter: "agTextColumnFilter", filterParams: filterEquals, floatingFilter: true },
  {
    field: "txn_date",
    headerName: "Date",
    filter: "agDateColumnFilter",
    filterParams: { filterOptions: ["inRange", "greaterThanOrEqual", "lessThanOrEqual", "equals"], maxNumConditions: 1 },
    floatingFilter: true,
  },
  {
    field: "amount",
    headerName: "Amount",
    type: "rightAligned",
    filter: "agTextColumnFilter",
    filterParams: amountFilter,
    floatingFilter: true,
  },
  { field: "currency", headerName: "Currency", filter: "agTextColumnFilter", filterParams: filterEquals, floatingFilter: true, width: 110 },
  { field: "reference", headerName: "Reference", filter: "agTextColumnFilter", filterParams: filterText, floatingFilter: true, flex: 1 },
  {
    field: "status",
    headerName: "Status",
    width: 110,
    cellStyle: (p) => (p.value === "open" ? null : { color: "#8a6d00" }),
  },
  { field: "id", headerName: "Id", width: 300, sortable: false },
];

export function App() {
  const [form, setForm] = useState<Form>({
    operator: "alice",
    treaty: "TR-0001",
    periodFrom: "2021-01",
    periodTo: "2025-12",
    status: "open",
    currency: "",
  });
  const [searched, setSearched] = useState<Searched | null>(null);
  const [error, setError] = useState<{ text: string; snapshotGone: boolean } | null>(null);
  const [busy, setBusy] = useState(false);
  const [stale, setStale] = useState(false);
  const [viewTotals, setViewTotals] = useState<{ rows: number; totals: Total[] } | null>(null);
  const [picked, setPicked] = useState<Picked>(noneSelected());
  const [summarized, setSummarized] = useState<Summarized | null>(null);
  const [dialog, setDialog] = useState<{ selection: Selection; summary: SelectionSummary } | null>(null);
  const api = useRef<GridApi<Row> | null>(null);
  const view = useRef<ViewFilter>({});
  const pickedRef = useRef<Picked>(picked);
  pickedRef.current = picked;
  // Each datasource is a generation: answers of an older one change nothing.
  const generation = useRef(0);
  const search = searched?.result ?? null;
  const selection = selectionOf(picked);
  const selectionKey = selection ? JSON.stringify(selection) : "";
  const summary = summarized && summarized.key === selectionKey ? summarized.summary : null;

  /** Drops the selection, in the state and in the grid's checkboxes. */
  const unselect = useCallback(() => {
    setPicked(noneSelected());
    api.current?.deselectAll();
  }, []);

  const runSearch = useCallback(async () => {
    setBusy(true);
    setError(null);
    const body: Record<string, unknown> = {
      treaty_ids: form.treaty.split(",").map((t) => t.trim()).filter(Boolean),
      period_from: form.periodFrom,
      period_to: form.periodTo,
      status: form.status,
    };
    if (form.currency) body.currency = form.currency;
    const who: Identity = { operator: form.operator.trim() || "alice" };
    const answer = await call<Search>(who, "POST", "/v1/searches", body).catch(
      (e: Error): Answer<Search> => ({ status: 0, error: { error: "network", message: e.message } }),
    );
    setBusy(false);
    if ("error" in answer) {
      setError({ text: `${answer.error.error}: ${answer.error.message}`, snapshotGone: false });
      return;
    }
    setStale(false);
    setViewTotals(null);
    setSummarized(null);
    unselect();
    setSearched({ result: answer.body, who });
  }, [form, unselect]);

  // The datasource reads the snapshot's pages (or its view's); one block is
  // one API page.
  const datasource = useMemo<IDatasource | null>(() => {
    if (!searched) return null;
    const { result, who } = searched;
    const mine = (generation.current += 1);
    return {
      getRows: async (params: IGetRowsParams) => {
        const number = Math.floor(params.startRow / result.page_size);
        const filter = viewFilter(params.filterModel as FilterModel);
        if (JSON.stringify(filter) !== JSON.stringify(view.current)) {
          // Another view: a selection of the old one no longer says what it meant.
          view.current = filter;
          unselect();
        }
        const query = pageQuery(sortParam(params.sortModel as SortModelItem[]), filter);
        const path = `/v1/searches/${result.snapshot_id}/pages/${number}${query ? `?${query}` : ""}`;
        const answer = await call<Page>(who, "GET", path).catch(
          (e: Error): Answer<Page> => ({ status: 0, error: { error: "network", message: e.message } }),
        );
        if (mine !== generation.current) return;
        if ("error" in answer) {
          const e = answer.error;
          setError({
            text: `${e.error}${e.field ? ` (${e.field})` : ""}: ${e.message}`,
            snapshotGone: e.error === "snapshot_not_found",
          });
          params.failCallback();
          return;
        }
        const page = answer.body;
        if (page.stale) setStale(true);
        setViewTotals({ rows: page.row_count, totals: page.totals });
        params.successCallback(page.rows, page.row_count);
        // The loaded rows' checkboxes say what the selection holds.
        const current = pickedRef.current;
        api.current?.forEachNode((node) => {
          if (node.data && node.isSelected() !== ticked(current, node.data)) node.setSelected(ticked(current, node.data), false, "api");
        });
      },
    };
  }, [searched, unselect]);

  useEffect(() => {
    if (api.current && datasource) api.current.setGridOption("datasource", datasource);
  }, [datasource]);

  // The selection's summary from the server (the same resolver a clearance
  // uses), a moment after the selection settles; an answer is kept with the
  // selection it answers, so an older one never stands for a newer selection.
  useEffect(() => {
    if (!searched || !selection) return;
    let current = true;
    const timer = setTimeout(async () => {
      const path = `/v1/searches/${searched.result.snapshot_id}/selection-summary`;
      const answer = await call<SelectionSummary>(searched.who, "POST", path, { selection }).catch(
        (e: Error): Answer<SelectionSummary> => ({ status: 0, error: { error: "network", message: e.message } }),
      );
      if (!current) return;
      if ("error" in answer) {
        setSummarized(null);
        setError({ text: `${answer.error.error}: ${answer.error.message}`, snapshotGone: answer.error.error === "snapshot_not_found" });
      } else {
        setSummarized({ key: selectionKey, summary: answer.body });
      }
    }, 250);
    return () => {
      current = false;
      clearTimeout(timer);
    };
    // The selection is named by its key: a new Set with the same rows is the same selection.
  }, [selectionKey, searched]);

  const onRowSelected = useCallback((event: RowSelectedEvent<Row>) => {
    if (event.source === "api" || !event.data) return;
    const id = event.data.id;
    const selected = event.node.isSelected() ?? false;
    setPicked((current) => {
      if (current.mode === "ids") {
        const ids = new Set(current.ids);
        if (selected) ids.add(id);
        else ids.delete(id);
        return { mode: "ids", ids };
      }
      const except = new Set(current.except);
      if (selected) except.delete(id);
      else except.add(id);
      return { ...current, except };
    });
  }, []);

  const selectAllInView = () => {
    const all: Picked = { mode: "all", view: view.current, except: new Set() };
    setPicked(all);
    api.current?.forEachNode((node) => {
      if (node.data) node.setSelected(ticked(all, node.data), false, "api");
    });
  };

  const onGridReady = (event: GridReadyEvent<Row>) => {
    api.current = event.api;
    if (datasource) event.api.setGridOption("datasource", datasource);
  };

  const selectedCount = summary?.row_count ?? (picked.mode === "ids" ? picked.ids.size : 0);
  const retry = () => {
    setError(null);
    api.current?.refreshInfiniteCache();
  };
  const field = (name: keyof Form) => ({
    value: form[name],
    onChange: (e: React.ChangeEvent<HTMLInputElement | HTMLSelectElement>) => setForm({ ...form, [name]: e.target.value }),
  });

  return (
    <main className="app">
      <h1>Cash clearance</h1>
      <form
        className="search"
        onSubmit={(e) => {
          e.preventDefault();
          void runSearch();
        }}
      >
        <label>
          Operator <input {...field("operator")} size={10} />
        </label>
        <label>
          Treaty <input {...field("treaty")} size={10} required />
        </label>
        <label>
          Period from <input {...field("periodFrom")} size={7} placeholder="YYYY-MM" pattern="[0-9]{4}-[0-9]{2}" required />
        </label>
        <label>
          Period to <input {...field("periodTo")} size={7} placeholder="YYYY-MM" pattern="[0-9]{4}-[0-9]{2}" required />
        </label>
        <label>
          Status
          <select {...field("status")}>
            <option value="open">open</option>
            <option value="cleared">cleared</option>
            <option value="all">all</option>
          </select>
        </label>
        <label>
          Currency
          <select {...field("currency")}>
            {CURRENCIES.map((c) => (
              <option key={c} value={c}>
                {c || "any"}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" disabled={busy}>
          Search
        </button>
      </form>
      {error && (
        <div role="alert" className="error">
          {error.text}{" "}
          {error.snapshotGone ? (
            <button type="button" onClick={() => void runSearch()}>
              Search again
            </button>
          ) : (
            search && (
              <button type="button" onClick={retry}>
                Retry
              </button>
            )
          )}
        </div>
      )}
      {stale && (
        <div role="status" className="stale">
          The ledger moved since this search: rows may have been cleared by someone else.{" "}
          <button type="button" onClick={() => void runSearch()}>
            Search again
          </button>
        </div>
      )}
      {search && (
        <>
          <div className="toolbar">
            <span aria-label="View totals">
              Snapshot {search.row_count.toLocaleString()} rows ({search.cache}); view{" "}
              {(viewTotals?.rows ?? search.row_count).toLocaleString()} rows: {amountText(viewTotals?.totals ?? search.totals)}
            </span>
            {search.closed_periods && search.closed_periods.length > 0 && (
              <span aria-label="Closed periods">
                Closed: {search.closed_periods.map((c) => `${c.treaty_id} ${c.period}`).join(", ")}
              </span>
            )}
            <button type="button" onClick={selectAllInView}>
              Select all in view
            </button>
            <span aria-label="Selection totals">
              Selected {selectedCount.toLocaleString()} rows: {summary ? amountText(summary.totals) : "nothing"}
              {summary && summary.not_open.count > 0 && ` (${summary.not_open.count} not open, left out)`}
              {summary && ` · ${summary.mode === "job" ? "runs as a job" : "clears at once"}`}
            </span>
            <button
              type="button"
              disabled={!summary || !selection || summary.row_count === 0}
              onClick={() => summary && selection && setDialog({ selection, summary })}
            >
              Mark Cleared
            </button>
          </div>
          <div className="grid" style={{ height: 560 }}>
            <AgGridReact<Row>
              theme={themeQuartz}
              columnDefs={COLUMNS}
              defaultColDef={DEFAULT_COLUMN}
              rowModelType="infinite"
              cacheBlockSize={search.page_size}
              maxBlocksInCache={20}
              getRowId={rowId}
              rowSelection={ROW_SELECTION}
              onRowSelected={onRowSelected}
              onGridReady={onGridReady}
            />
          </div>
        </>
      )}
      {dialog && searched && (
        <MarkCleared
          who={searched.who}
          search={searched.result}
          selection={dialog.selection}
          summary={dialog.summary}
          onClose={() => setDialog(null)}
          onCleared={unselect}
          onSearchAgain={() => {
            setDialog(null);
            void runSearch();
          }}
        />
      )}
    </main>
  );
}
