// The cash clearance API as the grid calls it (openapi.yaml is the
// contract). Locally the local server serves this app and the API on one
// origin and takes the dev identity headers; deployed, VITE_API_BASE is the
// HTTP API's stage URL and a bearer token (a JWT the API Gateway authorizer
// accepts) is sent instead.

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

export type Job = {
  job_id: string;
  state: "running" | "succeeded" | "failed";
  chunks_total: number;
  chunks_done: number;
  row_count: number;
  clearance_id: string | null;
  error: string | null;
};

export type ApiError = {
  error: string;
  message: string;
  field?: string;
  moved_ids?: string[];
};

/** An answer: its status and body (JSON), or the API's error. */
export type Answer<T> = { status: number; body: T } | { status: number; error: ApiError };

export type Identity = { operator: string };

const BASE: string = import.meta.env.VITE_API_BASE ?? "";

/** Deployed: the token the host page stored after sign-in, else the build's. */
function bearer(): string | undefined {
  return sessionStorage.getItem("clearance.token") ?? import.meta.env.VITE_API_TOKEN ?? undefined;
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
 * A POST that may be retried: the same Idempotency-Key on every attempt of
 * one click, so a retry after a lost answer or a 503 is answered once.
 */
export async function postOnce<T>(
  who: Identity,
  path: string,
  body: unknown,
  key: string,
  attempts = 3,
): Promise<Answer<T>> {
  let last: Answer<T> | undefined;
  for (let attempt = 0; attempt < attempts; attempt += 1) {
    try {
      last = await call<T>(who, "POST", path, body, key);
      if (last.status !== 503 && !("error" in last && last.error.error === "request_in_flight")) return last;
    } catch {
      // The answer was lost: retry with the same key.
    }
    await new Promise((resolve) => setTimeout(resolve, 500 * (attempt + 1)));
  }
  return last ?? { status: 0, error: { error: "network", message: "the API did not answer" } };
}
