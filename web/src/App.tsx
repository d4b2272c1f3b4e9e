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
import { call, type Answer, type Identity, type Page, type Row, type Search, type Selection, type SelectionSummary, type Total, type ViewFilter } from "./api";
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

const PAGE_SIZE = 1000;
const CURRENCIES = ["", "AUD", "BRL", "CAD", "CHF", "CNY", "DKK", "EUR", "GBP", "HKD", "INR", "JPY", "MXN", "NOK", "NZD", "SEK", "SGD", "USD", "ZAR"];

type Form = { operator: string; treaty: string; periodFrom: string; periodTo: string; status: string; currency: string };

/** What the operator selected: rows by id, or all of the view but some. */
type Picked = { mode: "ids"; ids: Set<string> } | { mode: "all"; view: ViewFilter; except: Set<string> };

const noneSelected = (): Picked => ({ mode: "ids", ids: new Set() });

export function selectionOf(picked: Picked): Selection | undefined {
  if (picked.mode === "ids") return picked.ids.size ? { ids: [...picked.ids] } : undefined;
  return { all: true, view: picked.view, except: [...picked.except] };
}

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
  const [search, setSearch] = useState<Search | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [stale, setStale] = useState(false);
  const [viewTotals, setViewTotals] = useState<{ rows: number; totals: Total[] } | null>(null);
  const [picked, setPicked] = useState<Picked>(noneSelected());
  const [summary, setSummary] = useState<SelectionSummary | null>(null);
  const [dialog, setDialog] = useState(false);
  const api = useRef<GridApi<Row> | null>(null);
  const view = useRef<ViewFilter>({});
  const pickedRef = useRef<Picked>(picked);
  pickedRef.current = picked;
  const who: Identity = useMemo(() => ({ operator: form.operator.trim() || "alice" }), [form.operator]);

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
    const answer = await call<Search>(who, "POST", "/v1/searches", body).catch(
      (e: Error): Answer<Search> => ({ status: 0, error: { error: "network", message: e.message } }),
    );
    setBusy(false);
    if ("error" in answer) {
      setError(`${answer.error.error}: ${answer.error.message}`);
      return;
    }
    setStale(false);
    setPicked(noneSelected());
    setSummary(null);
    setSearch(answer.body);
  }, [form, who]);

  // The datasource reads the snapshot's pages (or its view's); one block is
  // one API page.
  const datasource = useMemo<IDatasource | null>(() => {
    if (!search) return null;
    return {
      getRows: async (params: IGetRowsParams) => {
        const number = Math.floor(params.startRow / PAGE_SIZE);
        const filter = viewFilter(params.filterModel as FilterModel);
        if (JSON.stringify(filter) !== JSON.stringify(view.current)) {
          // Another view: a selection of the old one no longer says what it meant.
          view.current = filter;
          setPicked(noneSelected());
          api.current?.forEachNode((node) => node.setSelected(false, false, "api"));
        }
        const query = pageQuery(sortParam(params.sortModel as SortModelItem[]), filter);
        const path = `/v1/searches/${search.snapshot_id}/pages/${number}${query ? `?${query}` : ""}`;
        const answer = await call<Page>(who, "GET", path).catch(
          (e: Error): Answer<Page> => ({ status: 0, error: { error: "network", message: e.message } }),
        );
        if ("error" in answer) {
          setError(`${answer.error.error}${answer.error.field ? ` (${answer.error.field})` : ""}: ${answer.error.message}`);
          params.failCallback();
          return;
        }
        setError(null);
        const page = answer.body;
        if (page.stale) setStale(true);
        setViewTotals({ rows: page.row_count, totals: page.totals });
        params.successCallback(page.rows, page.row_count);
        const current = pickedRef.current;
        if (current.mode === "all") {
          api.current?.forEachNode((node) => {
            if (node.data && node.data.status === "open" && !current.except.has(node.data.id)) node.setSelected(true, false, "api");
          });
        }
      },
    };
  }, [search, who]);

  useEffect(() => {
    if (api.current && datasource) api.current.setGridOption("datasource", datasource);
  }, [datasource]);

  // The selection's summary from the server (the same resolver a clearance
  // uses), a moment after the selection settles.
  useEffect(() => {
    const selection = selectionOf(picked);
    if (!search || !selection) {
      setSummary(null);
      return;
    }
    const timer = setTimeout(async () => {
      const answer = await call<SelectionSummary>(who, "POST", `/v1/searches/${search.snapshot_id}/selection-summary`, { selection });
      if ("error" in answer) setError(`${answer.error.error}: ${answer.error.message}`);
      else setSummary(answer.body);
    }, 250);
    return () => clearTimeout(timer);
  }, [picked, search, who]);

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
    setPicked({ mode: "all", view: view.current, except: new Set() });
    api.current?.forEachNode((node) => {
      if (node.data?.status === "open") node.setSelected(true, false, "api");
    });
  };

  const onGridReady = (event: GridReadyEvent<Row>) => {
    api.current = event.api;
    if (datasource) event.api.setGridOption("datasource", datasource);
  };

  const selectedCount = summary?.row_count ?? (picked.mode === "ids" ? picked.ids.size : 0);
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
        <p role="alert" className="error">
          {error}
        </p>
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
            <button type="button" onClick={selectAllInView}>
              Select all in view
            </button>
            <span aria-label="Selection totals">
              Selected {selectedCount.toLocaleString()} rows: {summary ? amountText(summary.totals) : "nothing"}
              {summary && summary.not_open.count > 0 && ` (${summary.not_open.count} not open, left out)`}
              {summary && ` · ${summary.mode === "job" ? "runs as a job" : "clears at once"}`}
            </span>
            <button type="button" disabled={!summary || summary.row_count === 0} onClick={() => setDialog(true)}>
              Mark Cleared
            </button>
          </div>
          <div className="grid" style={{ height: 560 }}>
            <AgGridReact<Row>
              theme={themeQuartz}
              columnDefs={COLUMNS}
              defaultColDef={{ sortable: true, resizable: true, width: 140 }}
              rowModelType="infinite"
              cacheBlockSize={PAGE_SIZE}
              maxBlocksInCache={20}
              getRowId={(p) => p.data.id}
              rowSelection={{ mode: "multiRow", checkboxes: true, headerCheckbox: false, enableClickSelection: false }}
              onRowSelected={onRowSelected}
              onGridReady={onGridReady}
            />
          </div>
        </>
      )}
      {dialog && search && summary && selectionOf(picked) && (
        <MarkCleared
          who={who}
          search={search}
          selection={selectionOf(picked)!}
          summary={summary}
          onClose={() => setDialog(false)}
          onSearchAgain={() => {
            setDialog(false);
            void runSearch();
          }}
        />
      )}
    </main>
  );
}
