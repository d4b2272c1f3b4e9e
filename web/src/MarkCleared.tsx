// The Mark Cleared dialog: the check against the selection (both frozen
// when the dialog opened), one Idempotency-Key per intended action: kept
// across retries and across clicks while the outcome of the same body is
// unknown (no answer, 5xx, 409 request_in_flight), never reused for another
// body. Then the clearance, the rows that moved, the refusal, or the job's
// progress to its end.

import { useEffect, useId, useRef, useState } from "react";
import {
  call,
  freshKey,
  postOnce,
  uncertain,
  type Clearance,
  type Identity,
  type Job,
  type Search,
  type Selection,
  type SelectionSummary,
} from "./api";

type Outcome =
  | { kind: "idle" }
  | { kind: "sending" }
  | { kind: "cleared"; clearance: Clearance }
  | { kind: "job"; job: Job; failedPolls: number }
  | { kind: "moved"; ids: string[] }
  | { kind: "refused"; message: string };

const CURRENCIES = ["AUD", "BRL", "CAD", "CHF", "CNY", "DKK", "EUR", "GBP", "HKD", "INR", "JPY", "MXN", "NOK", "NZD", "SEK", "SGD", "USD", "ZAR"];
/** Failed status reads in a row before the dialog stops polling and says so. */
const POLL_FAILURES_MAX = 30;

/** Today in the operator's time zone, as YYYY-MM-DD. */
function today(): string {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

export function MarkCleared(props: {
  who: Identity;
  search: Search;
  selection: Selection;
  summary: SelectionSummary;
  onClose: () => void;
  onSearchAgain: () => void;
  /** The selection is cleared (posted, or its job succeeded): it is spent. */
  onCleared: () => void;
}) {
  const { who, search, selection, summary, onCleared } = props;
  const first = summary.totals[0];
  const [number, setNumber] = useState("");
  const [amount, setAmount] = useState(first?.amount ?? "");
  const [currency, setCurrency] = useState(first?.currency ?? "USD");
  const [receivedOn, setReceivedOn] = useState(today());
  const [allowDifference, setAllowDifference] = useState(false);
  const [outcome, setOutcome] = useState<Outcome>({ kind: "idle" });
  // The key of the last body whose outcome is unknown.
  const pending = useRef<{ body: string; key: string } | null>(null);
  const title = useId();

  const submit = async () => {
    setOutcome({ kind: "sending" });
    const body = {
      snapshot_id: search.snapshot_id,
      version_token: search.version_token,
      selection,
      check: { number, amount, currency, received_on: receivedOn },
      allow_difference: allowDifference,
    };
    const text = JSON.stringify(body);
    const key = pending.current?.body === text ? pending.current.key : freshKey();
    pending.current = { body: text, key };
    try {
      const answer = await postOnce<Clearance | Job>(who, "/v1/clearances", body, key);
      if (!uncertain(answer)) pending.current = null;
      if (!("error" in answer)) {
        if (answer.status === 202) setOutcome({ kind: "job", job: answer.body as Job, failedPolls: 0 });
        else setOutcome({ kind: "cleared", clearance: answer.body as Clearance });
      } else if (answer.error.error === "stale_snapshot") {
        setOutcome({ kind: "moved", ids: answer.error.moved_ids ?? [] });
      } else {
        const again = uncertain(answer) ? " Nothing is known to be cleared: Clear again sends the same request." : "";
        const closed = answer.error.periods?.length ? ` Closed periods: ${answer.error.periods.join(", ")}.` : "";
        setOutcome({ kind: "refused", message: `${answer.error.error}: ${answer.error.message}${closed}${again}` });
      }
    } catch (e) {
      setOutcome({ kind: "refused", message: `the request failed: ${(e as Error).message}` });
    }
  };

  // A job is polled until it ends, every second (its Retry-After).
  const job = outcome.kind === "job" ? outcome : null;
  const spent = outcome.kind === "cleared" || (outcome.kind === "job" && outcome.job.state === "succeeded");
  useEffect(() => {
    if (spent) onCleared();
  }, [spent, onCleared]);
  useEffect(() => {
    if (!job || job.job.state !== "running" || job.failedPolls >= POLL_FAILURES_MAX) return;
    const timer = setTimeout(async () => {
      const answer = await call<Job>(who, "GET", `/v1/jobs/${job.job.job_id}`).catch(() => null);
      if (answer && !("error" in answer)) setOutcome({ kind: "job", job: answer.body, failedPolls: 0 });
      else setOutcome({ ...job, failedPolls: job.failedPolls + 1 });
    }, 1000);
    return () => clearTimeout(timer);
  }, [job, who]);

  const done = outcome.kind === "sending" || outcome.kind === "job" || outcome.kind === "cleared";
  return (
    <div className="backdrop">
      <div
        role="dialog"
        aria-modal="true"
        aria-labelledby={title}
        className="dialog"
        onKeyDown={(e) => e.key === "Escape" && props.onClose()}
      >
        <h2 id={title}>Mark Cleared</h2>
        <p>
          {summary.row_count.toLocaleString()} rows of {summary.treaty_id}:{" "}
          {summary.totals.map((t) => `${t.amount} ${t.currency}`).join(", ")}
          {summary.mode === "job" ? " (runs as a batch job)" : ""}
          {summary.totals.length > 1 ? " — several currencies: a check pays one, narrow the selection" : ""}
        </p>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void submit();
          }}
        >
          <label>
            Check number <input value={number} onChange={(e) => setNumber(e.target.value)} required maxLength={64} autoFocus />
          </label>
          <label>
            Check amount <input value={amount} onChange={(e) => setAmount(e.target.value)} required inputMode="decimal" />
          </label>
          <label>
            Check currency
            <select value={currency} onChange={(e) => setCurrency(e.target.value)}>
              {CURRENCIES.map((c) => (
                <option key={c} value={c}>
                  {c}
                </option>
              ))}
            </select>
          </label>
          <label>
            Received on <input type="date" value={receivedOn} onChange={(e) => setReceivedOn(e.target.value)} required />
          </label>
          <label className="check">
            <input type="checkbox" checked={allowDifference} onChange={(e) => setAllowDifference(e.target.checked)} /> Allow
            difference
          </label>
          <div className="actions">
            <button type="submit" disabled={done}>
              Clear
            </button>
            <button type="button" onClick={props.onClose}>
              Close
            </button>
          </div>
        </form>
        <Result outcome={outcome} onSearchAgain={props.onSearchAgain} />
      </div>
    </div>
  );
}

function JobProgress({ job, failedPolls, onSearchAgain }: { job: Job; failedPolls: number; onSearchAgain: () => void }) {
  const total = Math.max(job.chunks_total, 1);
  return (
    <div>
      <div
        role="progressbar"
        aria-label="Job progress"
        aria-valuemin={0}
        aria-valuemax={total}
        aria-valuenow={job.chunks_done}
        className="progress"
      >
        <div style={{ width: `${(100 * job.chunks_done) / total}%` }} />
      </div>
      <p role="status">
        Job {job.job_id}: {job.chunks_done}/{job.chunks_total} chunks, {job.state}
        {job.clearance_id ? `: clearance ${job.clearance_id}` : ""}
        {job.error ? ` (${job.error.code}: ${job.error.message})` : ""}
        {failedPolls >= POLL_FAILURES_MAX ? " — its status could not be read; it runs on: look again later" : ""}
      </p>
      {job.error?.code === "conflict" && (
        <button type="button" onClick={onSearchAgain}>
          Search again
        </button>
      )}
    </div>
  );
}

function Result({ outcome, onSearchAgain }: { outcome: Outcome; onSearchAgain: () => void }) {
  switch (outcome.kind) {
    case "idle":
      return null;
    case "sending":
      return <p role="status">Clearing…</p>;
    case "cleared":
      return (
        <p role="status">
          Cleared {outcome.clearance.row_count.toLocaleString()} rows, {outcome.clearance.cleared_total} {outcome.clearance.currency}{" "}
          (difference {outcome.clearance.difference}): clearance {outcome.clearance.clearance_id}
        </p>
      );
    case "job":
      return <JobProgress job={outcome.job} failedPolls={outcome.failedPolls} onSearchAgain={onSearchAgain} />;
    case "moved":
      return (
        <div role="alert">
          {outcome.ids.length} rows moved since your search (cleared or reversed by someone else); nothing was cleared.{" "}
          <button type="button" onClick={onSearchAgain}>
            Search again
          </button>
        </div>
      );
    case "refused":
      return <p role="alert">{outcome.message}</p>;
  }
}
