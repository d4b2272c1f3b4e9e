// The Mark Cleared dialog: the check against the selection, one
// Idempotency-Key per click on "Clear" (kept across that click's retries),
// then the clearance, the rows that moved, the refusal, or the job's
// progress to its end.

import { useEffect, useId, useState } from "react";
import { call, postOnce, type Clearance, type Identity, type Job, type Search, type Selection, type SelectionSummary } from "./api";

type Outcome =
  | { kind: "idle" }
  | { kind: "sending" }
  | { kind: "cleared"; clearance: Clearance }
  | { kind: "job"; job: Job }
  | { kind: "moved"; ids: string[] }
  | { kind: "refused"; message: string };

const today = () => new Date().toISOString().slice(0, 10);

export function MarkCleared(props: {
  who: Identity;
  search: Search;
  selection: Selection;
  summary: SelectionSummary;
  onClose: () => void;
  onSearchAgain: () => void;
}) {
  const { who, search, selection, summary } = props;
  const first = summary.totals[0];
  const [number, setNumber] = useState("");
  const [amount, setAmount] = useState(first?.amount ?? "");
  const [currency, setCurrency] = useState(first?.currency ?? "USD");
  const [receivedOn, setReceivedOn] = useState(today());
  const [allowDifference, setAllowDifference] = useState(false);
  const [outcome, setOutcome] = useState<Outcome>({ kind: "idle" });
  const title = useId();

  const submit = async () => {
    setOutcome({ kind: "sending" });
    const key = crypto.randomUUID();
    const body = {
      snapshot_id: search.snapshot_id,
      version_token: search.version_token,
      selection,
      check: { number, amount, currency, received_on: receivedOn },
      allow_difference: allowDifference,
    };
    const answer = await postOnce<Clearance | Job>(who, "/v1/clearances", body, key);
    if (!("error" in answer)) {
      if (answer.status === 202) setOutcome({ kind: "job", job: answer.body as Job });
      else setOutcome({ kind: "cleared", clearance: answer.body as Clearance });
    } else if (answer.error.error === "stale_snapshot") {
      setOutcome({ kind: "moved", ids: answer.error.moved_ids ?? [] });
    } else {
      setOutcome({ kind: "refused", message: `${answer.error.error}: ${answer.error.message}` });
    }
  };

  // A job is polled until it ends, as often as its Retry-After says (1 s).
  const job = outcome.kind === "job" ? outcome.job : null;
  useEffect(() => {
    if (!job || job.state !== "running") return;
    const timer = setTimeout(async () => {
      const answer = await call<Job>(who, "GET", `/v1/jobs/${job.job_id}`).catch(() => null);
      if (answer && !("error" in answer)) setOutcome({ kind: "job", job: answer.body });
      else setOutcome({ kind: "job", job: { ...job } });
    }, 1000);
    return () => clearTimeout(timer);
  }, [job, who]);

  return (
    <div className="backdrop">
      <div role="dialog" aria-modal="true" aria-labelledby={title} className="dialog">
        <h2 id={title}>Mark Cleared</h2>
        <p>
          {summary.row_count.toLocaleString()} rows of {summary.treaty_id}:{" "}
          {summary.totals.map((t) => `${t.amount} ${t.currency}`).join(", ")}
          {summary.mode === "job" ? " (runs as a batch job)" : ""}
        </p>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void submit();
          }}
        >
          <label>
            Check number <input value={number} onChange={(e) => setNumber(e.target.value)} required maxLength={64} />
          </label>
          <label>
            Check amount <input value={amount} onChange={(e) => setAmount(e.target.value)} required inputMode="decimal" />
          </label>
          <label>
            Check currency <input value={currency} onChange={(e) => setCurrency(e.target.value.toUpperCase())} required size={4} />
          </label>
          <label>
            Received on <input type="date" value={receivedOn} onChange={(e) => setReceivedOn(e.target.value)} required />
          </label>
          <label className="check">
            <input type="checkbox" checked={allowDifference} onChange={(e) => setAllowDifference(e.target.checked)} /> Allow
            difference
          </label>
          <div className="actions">
            <button type="submit" disabled={outcome.kind === "sending" || outcome.kind === "job" || outcome.kind === "cleared"}>
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
    case "job": {
      const j = outcome.job;
      return (
        <div>
          <div
            role="progressbar"
            aria-label="Job progress"
            aria-valuemin={0}
            aria-valuemax={j.chunks_total}
            aria-valuenow={j.chunks_done}
            className="progress"
          >
            <div style={{ width: `${j.chunks_total ? (100 * j.chunks_done) / j.chunks_total : 0}%` }} />
          </div>
          <p role="status">
            Job {j.job_id}: {j.chunks_done}/{j.chunks_total} chunks, {j.state}
            {j.clearance_id ? `: clearance ${j.clearance_id}` : ""}
            {j.error ? ` (${j.error})` : ""}
          </p>
        </div>
      );
    }
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
