// The cash clearance API as the grid calls it (openapi.yaml is the
// contract). Locally the local server serves this app and the API on one
// origin and takes the dev identity headers; deployed, VITE_API_BASE is the
// HTTP API's stage URL and a bearer token (a JWT the API Gateway authorizer
// accepts) is sent instead, read at run time from where the host page's
// sign-in put it (never compiled into the bundle).

export type Total = { currency: string; count: number; amount: string };

export type Row = {
  id: string;
  treaty_id: string;
  cedent_id: string;
  accounting_period: string;
  txn_date: string;
  amount: string;
  currency: string;
  reference: string;
  status: string;
  row_version: number;
};

export type Page = {
  snapshot_id: string;
  number: number;
  page_count: number;
  row_count: number;
  totals: Total[];
  stale: boolean;
  rows: Row[];
};

export type Search = {
  snapshot_id: string;
  version_token: string;
  row_count: number;
  page_count: number;
  page_size: number;
  cache: "hit" | "miss";
  totals: Total[];
  /** Closed accounting periods of the search's treaties (their rows cannot be cleared). */
  closed_periods?: { treaty_id: string; period: string }[];
  page: Page;
};

export type ViewFilter = {
  cedent_id?: string[];
  currency?: string;
  amount_min?: string;
  amount_max?: string;
  reference?: string;
  txn_date_from?: string;
  txn_date_to?: string;
  period_from?: string;
  period_to?: string;
};

export type Selection =
  | { ids: string[] }
  | { all: true; view?: ViewFilter; except: string[] };

export type SelectionSummary = {
  row_count: number;
  treaty_id: string | null;
  totals: Total[];
  not_open: { count: number; ids: string[] };
  mode: "sync" | "job";
};

export type Clearance = {
  clearance_id: string;
  state: string;
  row_count: number;
  cleared_total: string;
  difference: string;
  currency: string;
};

export type JobFailure = { code: string; message: string; conflicting_ids?: string[] };

export type Job = {
  job_id: string;
  state: "running" | "succeeded" | "failed";
  chunks_total: number;
  chunks_done: number;
  row_count: number;
  clearance_id: string | null;
  error: JobFailure | null;
};

export type ApiError = {
  error: string;
  message: string;
  field?: string;
  moved_ids?: string[];
  /** The closed accounting periods of a `period_closed` refusal (YYYY-MM). */
  periods?: string[];
};

/** An answer: its status and body (JSON), or the API's error. */
export type Answer<T> = { status: number; body: T } | { status: number; error: ApiError };

export type Identity = { operator: string };

const BASE: string = import.meta.env.VITE_API_BASE ?? "";

/** Deployed: the token the host page's sign-in stored. */
function bearer(): string | undefined {
  return sessionStorage.getItem("clearance.token") ?? undefined;
}

/** A fresh Idempotency-Key (a v4 UUID), also where crypto.randomUUID is not offered (plain HTTP). */
export function freshKey(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** An answer that says nothing of whether the request took effect. */
export function uncertain<T>(answer: Answer<T>): boolean {
  return (
    answer.status === 0 ||
    answer.status >= 500 ||
    ("error" in answer && answer.error.error === "request_in_flight")
  );
}

export async function call<T>(
  who: Identity,
  method: string,
  path: string,
  body?: unknown,
  idempotencyKey?: string,
): Promise<Answer<T>> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const token = bearer();
  if (token) {
    headers.Authorization = `Bearer ${token}`;
  } else {
    headers["x-dev-operator"] = who.operator;
    headers["x-dev-treaties"] = "*";
  }
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  const response = await fetch(BASE + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await response.json().catch(() => ({ error: "not_json", message: response.statusText }));
  if (response.ok) return { status: response.status, body: json as T };
  return { status: response.status, error: json as ApiError };
}

/**
 * A POST that may be retried: the same Idempotency-Key on every attempt, so
 * a retry after a lost answer, a 5xx or a 409 request_in_flight is answered
 * once. Returns the last answer (status 0 when none came).
 */
export async function postOnce<T>(
  who: Identity,
  path: string,
  body: unknown,
  key: string,
  attempts = 3,
): Promise<Answer<T>> {
  let last: Answer<T> = { status: 0, error: { error: "network", message: "the API did not answer" } };
  for (let attempt = 0; attempt < attempts; attempt += 1) {
    if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
    try {
      last = await call<T>(who, "POST", path, body, key);
    } catch (e) {
      last = { status: 0, error: { error: "network", message: (e as Error).message } };
    }
    if (!uncertain(last)) return last;
  }
  return last;
}
