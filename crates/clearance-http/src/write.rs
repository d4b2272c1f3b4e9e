//! The write API: `POST /v1/clearances`, `GET /v1/clearances/{id}`,
//! `POST /v1/clearances/{id}/reversal`, the preview of a clearance,
//! `POST /v1/searches/{id}/selection-summary` (reads only, no key), and a
//! period's close and reopen, `POST /v1/treaties/{treaty_id}/periods/{period}/close|reopen`. Every
//! request is parsed and validated in full before any IO; every mutating one
//! runs under its idempotency key.

use std::future::Future;

use bytes::Bytes;
use clearance_core::access::Identity;
use clearance_core::batch::{JobStarter, JobStore};
use clearance_core::clearance::{ClearanceRequest, PostingError, ReversalReason, Selection};
use clearance_core::closes::PeriodAction;
use clearance_core::idempotency::{
    self, Decision, IdempotencyConfig, IdempotencyError, IdempotencyKey, IdempotencyStore, RequestKey,
    StoredResponse,
};
use clearance_core::outbox::{EventOutbox, EventPublisher};
use clearance_core::period::Period;
use clearance_core::ports::{ClearanceLedger, ScopeMirror, SnapshotStore};
use clearance_core::snapshot::SnapshotId;
use clearance_core::write::{ClearOutcome, ClearTimings, WriteError, WriteService};
use clearance_core::TreatyId;
use http::{HeaderValue, Method, Response, StatusCode};
use uuid::Uuid;

use crate::metrics::{self, Unit};
use crate::wire::{self, ClearanceRequestWire, ReversalRequestWire};
use crate::{
    check_body_size, identity, json_response, method_not_allowed, route_not_found, Api, ApiError, ApiRequest,
    BODY_BYTES_MAX,
};

/// Largest clearance body: room for a selection of 100,000 ids, under
/// Lambda's 6 MB request limit.
pub const CLEARANCE_BODY_BYTES_MAX: usize = 4 * 1024 * 1024;

/// The header a replayed answer carries.
pub const REPLAYED_HEADER: &str = "idempotency-replayed";

fn moved_ids(ids: &[Uuid]) -> serde_json::Value {
    ids.iter().map(|id| serde_json::Value::String(id.to_string())).collect()
}

impl From<WriteError> for ApiError {
    fn from(err: WriteError) -> Self {
        match err {
            WriteError::NotEntitled(treaty) => ApiError::new(
                "not_entitled",
                format!("you are not entitled to treaty {treaty} (or it does not exist)"),
            ),
            WriteError::SnapshotNotFound => ApiError::new(
                "snapshot_not_found",
                "no such snapshot for you, or it expired: run the search again",
            )
            .with_field("/snapshot_id"),
            WriteError::VersionTokenMismatch => ApiError::new(
                "version_token_mismatch",
                "the version token is not the snapshot's: send the one the search returned",
            )
            .with_field("/version_token"),
            e @ (WriteError::UnknownIds { .. }
            | WriteError::RowsNotOpen(_)
            | WriteError::SpansTreaties(_)
            | WriteError::EmptySelection
            | WriteError::TotalOutOfRange
            | WriteError::TooLarge { .. }
            | WriteError::Posting(_)
            | WriteError::Stale(_)) => selection_error(e),
            WriteError::ClearanceNotFound => {
                ApiError::new("clearance_not_found", "no such clearance for you").with_field("id")
            }
            WriteError::AlreadyReversed => {
                ApiError::new("already_reversed", "this clearance is already reversed")
            }
            WriteError::KeyBoundElsewhere => idempotency_error(IdempotencyError::KeyReused),
            e @ (WriteError::PeriodClosed(_)
            | WriteError::PeriodAlreadyClosed
            | WriteError::PeriodNotClosed
            | WriteError::CloserRoleRequired) => period_error(e),
            WriteError::Backend(e) => {
                tracing::error!(error = %e, "backend unavailable");
                ApiError::new(
                    "backend_unavailable",
                    "a backend is unavailable: retry shortly with the same Idempotency-Key",
                )
            }
            WriteError::Invariant(what) => {
                // Not an outage: logged with the ids the message names, and
                // answered so that no client retries it as one.
                tracing::error!(invariant = %what, "ledger invariant broken: nothing written");
                ApiError::new(
                    "internal_invariant",
                    "the ledger refused this posting as inconsistent; nothing was written: do not retry, \
                     report it",
                )
            }
            WriteError::Snapshot(e) => {
                tracing::error!(error = %e, "snapshot unreadable");
                ApiError::new("internal_error", "the snapshot could not be read: run the search again")
            }
        }
    }
}

/// The answers to a selection or a posting that does not fit the snapshot,
/// the check or the ledger.
fn selection_error(err: WriteError) -> ApiError {
    match err {
        WriteError::UnknownIds { field, ids } => ApiError::new(
            "unknown_ids",
            "these ids are not rows of the snapshot: select from the snapshot's pages",
        )
        .with_field(field)
        .with_detail("ids", moved_ids(&ids)),
        WriteError::RowsNotOpen(ids) => ApiError::new(
            "rows_not_open",
            "these rows were not open in the snapshot: only open rows can be cleared",
        )
        .with_field("/selection")
        .with_detail("ids", moved_ids(&ids)),
        WriteError::SpansTreaties(treaties) => ApiError::new(
            "selection_spans_treaties",
            format!(
                "a clearance clears rows of one treaty; this selection spans {}",
                treaties.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
            ),
        )
        .with_field("/selection"),
        WriteError::EmptySelection => {
            ApiError::new("no_open_rows", "the selection holds no row that is open in the snapshot")
                .with_field("/selection")
        }
        WriteError::TotalOutOfRange => ApiError::new(
            "amount_out_of_range",
            "the selected rows' total leaves the ledger's range (18 digits, 2 decimals): select fewer rows",
        )
        .with_field("/selection"),
        WriteError::TooLarge { rows, max } => ApiError::new(
            "selection_too_large",
            format!("{rows} rows is more than the {max} one clearance job takes: split the selection"),
        )
        .with_field("/selection")
        .with_detail("row_count", rows)
        .with_detail("batch_rows_max", max),
        WriteError::Posting(e) => posting_error(e),
        WriteError::Stale(ids) => ApiError::new(
            "stale_snapshot",
            "rows moved since your search (cleared or reversed by someone else): search again",
        )
        .with_field("/selection")
        .with_detail("moved_ids", moved_ids(&ids)),
        other => ApiError::from(other),
    }
}

/// The answers to a check that does not fit the selected rows.
fn posting_error(err: PostingError) -> ApiError {
    match err {
        PostingError::CurrencyMismatch { check, found } => ApiError::new(
            "currency_mismatch",
            format!("the selected rows are in {found}, the check in {check}"),
        )
        .with_field("/check/currency"),
        PostingError::AmountMismatch { selected, check } => ApiError::new(
            "amount_mismatch",
            format!(
                "the selected rows total {selected}, the check is {check}: change the selection, \
                     or set allow_difference to book a difference within the currency's tolerance to \
                     unapplied cash"
            ),
        )
        .with_field("/check/amount")
        .with_detail("selected_total", selected.to_string())
        .with_detail("check_amount", check.to_string()),
        PostingError::Range => ApiError::new(
            "amount_out_of_range",
            "the totals leave the ledger's range (18 digits, 2 decimals)",
        )
        .with_field("/check/amount"),
        PostingError::DifferenceOutOfTolerance { difference, bound } => ApiError::new(
            "difference_out_of_tolerance",
            format!(
                "the check differs from the selected rows by {difference}, beyond the {bound} this currency \
                     allows: change the selection, or (for an overpayment) set overpayment_to_unapplied"
            ),
        )
        .with_field("/check/amount")
        .with_detail("difference", difference.to_string())
        .with_detail("allowed_difference", bound.to_string()),
    }
}

/// The answers of period close (ADR 0015).
fn period_error(err: WriteError) -> ApiError {
    match err {
        WriteError::PeriodClosed(periods) => ApiError::new(
            "period_closed",
            "rows of closed accounting periods cannot be cleared or reversed: ask a closer to reopen them",
        )
        .with_detail(
            "periods",
            periods.iter().map(|p| serde_json::Value::String(p.to_string())).collect::<Vec<_>>(),
        ),
        WriteError::PeriodAlreadyClosed => {
            ApiError::new("period_already_closed", "this accounting period is already closed")
        }
        WriteError::PeriodNotClosed => {
            ApiError::new("period_not_closed", "this accounting period is open: there is nothing to reopen")
        }
        WriteError::CloserRoleRequired => ApiError::new(
            "closer_role_required",
            "closing and reopening periods takes the closer role (the JWT claim roles)",
        ),
        other => ApiError::from(other),
    }
}

/// The split of a clearance's time as a `Server-Timing` header (not part of
/// the stored body, so a replay carries none).
fn server_timing(response: &mut Response<Bytes>, timings: &ClearTimings) {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let value = format!(
        "snapshot;dur={:.1}, ledger;dur={:.1}, read_back;dur={:.1}",
        ms(timings.snapshot),
        ms(timings.ledger),
        ms(timings.read_back)
    );
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert("server-timing", value);
    }
}

fn idempotency_error(err: IdempotencyError) -> ApiError {
    match err {
        IdempotencyError::KeyReused => ApiError::new(
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different request: use a fresh key per action",
        )
        .with_field("Idempotency-Key"),
        IdempotencyError::InFlight => ApiError::new(
            "request_in_flight",
            "the first request with this Idempotency-Key is still running: retry in a moment",
        )
        .with_field("Idempotency-Key"),
        IdempotencyError::Backend(e) => {
            tracing::error!(error = %e, "idempotency store unavailable");
            ApiError::new(
                "backend_unavailable",
                "a backend is unavailable: retry shortly with the same Idempotency-Key",
            )
        }
    }
}

/// A 202 (fresh or replayed) names its job's URL as the client called the
/// API (behind the stage) and when to look: `Location`, `Retry-After`.
fn job_location(mut response: Response<Bytes>, base: &str) -> Response<Bytes> {
    if response.status() != StatusCode::ACCEPTED {
        return response;
    }
    let job: serde_json::Value = serde_json::from_slice(response.body()).unwrap_or_default();
    let Some(job_id) = job["job_id"].as_str() else { return response };
    if let Ok(location) = HeaderValue::from_str(&format!("{base}/v1/jobs/{job_id}")) {
        response.headers_mut().insert(http::header::LOCATION, location);
    }
    response.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Parses and validates a clearance body. No IO happens before this succeeds.
///
/// # Errors
/// [`ApiError`] 400/413 with a stable code and the field.
pub fn parse_clearance(body: &[u8]) -> Result<ClearanceRequest, ApiError> {
    check_body_size(body, CLEARANCE_BODY_BYTES_MAX)?;
    let request: ClearanceRequestWire = wire::parse_json(body)?;
    Ok(ClearanceRequest::parse(&request.into())?)
}

/// Parses and validates a selection summary body (a selection as a
/// clearance takes it, and nothing else).
///
/// # Errors
/// [`ApiError`] 400/413 with a stable code and the field.
pub fn parse_selection_summary(body: &[u8]) -> Result<Selection, ApiError> {
    check_body_size(body, CLEARANCE_BODY_BYTES_MAX)?;
    let request: wire::SelectionSummaryRequestWire = wire::parse_json(body)?;
    Ok(request.selection.parse()?)
}

/// Parses and validates a reversal body.
///
/// # Errors
/// [`ApiError`] 400/413 with a stable code and the field.
pub fn parse_reversal(body: &[u8]) -> Result<ReversalReason, ApiError> {
    check_body_size(body, BODY_BYTES_MAX)?;
    let request: ReversalRequestWire = wire::parse_json(body)?;
    Ok(ReversalReason::parse(&request.reason)?)
}

/// Parses a close's or a reopen's body: `{"reason": "..."}`; a close may
/// send no body at all.
///
/// # Errors
/// [`ApiError`] 400/413 with a stable code and the field.
pub fn parse_period_change(body: &[u8], action: PeriodAction) -> Result<String, ApiError> {
    check_body_size(body, BODY_BYTES_MAX)?;
    let reason = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        wire::parse_json::<wire::PeriodRequestWire>(body)?.reason
    };
    Ok(clearance_core::closes::check_reason(reason.as_deref(), action)?)
}

fn parse_clearance_id(raw: &str) -> Result<Uuid, ApiError> {
    clearance_core::text::parse_uuid(raw).ok_or_else(|| {
        ApiError::new("invalid_clearance_id", "a clearance id is a lower-case hyphenated UUID")
            .with_field("id")
    })
}

/// The request's idempotency key with the request's fingerprint (method,
/// path without the stage, body).
fn idempotency_key(request: &ApiRequest<'_>) -> Result<RequestKey, ApiError> {
    let raw = match request.headers.get("idempotency-key") {
        None => None,
        Some(value) => Some(value.to_str().map_err(|_| {
            ApiError::new("invalid_idempotency_key", "the key is plain ASCII").with_field("Idempotency-Key")
        })?),
    };
    let key = IdempotencyKey::parse(raw)?;
    Ok(RequestKey::new(key, request.method.as_str(), request.path, request.body))
}

/// The write API over the write service and an idempotency store.
pub struct WriteApi<S, G, M, J, R, E, I> {
    service: WriteService<S, G, M, J, R, E>,
    idempotency: I,
    config: IdempotencyConfig,
}

impl<S, G, M, J, R, E, I> WriteApi<S, G, M, J, R, E, I>
where
    S: SnapshotStore,
    G: ClearanceLedger + EventOutbox,
    M: ScopeMirror,
    J: JobStore,
    R: JobStarter,
    E: EventPublisher,
    I: IdempotencyStore,
{
    pub fn new(service: WriteService<S, G, M, J, R, E>, idempotency: I, config: IdempotencyConfig) -> Self {
        Self { service, idempotency, config }
    }

    /// Whether this API serves the route (the local server asks each API).
    pub fn serves(path: &str) -> bool {
        crate::serves_write(path)
    }

    async fn handle_request(&self, request: ApiRequest<'_>) -> Response<Bytes> {
        match self.route(request).await {
            Ok(response) => response,
            Err(err) => err.into_response(),
        }
    }

    async fn route(&self, request: ApiRequest<'_>) -> Result<Response<Bytes>, ApiError> {
        let segments: Vec<&str> = request.path.trim_end_matches('/').split('/').skip(1).collect();
        match (request.method, segments.as_slice()) {
            (&Method::POST, ["v1", "clearances"]) => self.post_clearance(&request).await,
            (&Method::GET, ["v1", "clearances", id]) => {
                let who = identity(request.identity.clone())?;
                let id = parse_clearance_id(id)?;
                let record = self.service.clearance(&who, id).await?;
                Ok(json_response(StatusCode::OK, wire::clearance_body(&record)))
            }
            (&Method::POST, ["v1", "clearances", id, "reversal"]) => {
                let who = identity(request.identity.clone())?;
                let id = parse_clearance_id(id)?;
                let key = idempotency_key(&request)?;
                let reason = parse_reversal(request.body)?;
                self.idempotent(&who, &key, &request, || async {
                    let reversed = self.service.reverse(&who, id, reason.clone(), &key).await?;
                    Ok(json_response(StatusCode::OK, wire::clearance_body(&reversed.record)))
                })
                .await
            }
            (&Method::POST, ["v1", "searches", id, "selection-summary"]) => {
                self.selection_summary(&request, id).await
            }
            (&Method::POST, ["v1", "treaties", treaty, "periods", period, action])
                if PeriodAction::parse(action).is_some() =>
            {
                self.change_period(&request, treaty, period, action).await
            }
            (_, ["v1", "clearances"])
            | (_, ["v1", "clearances", _, "reversal"])
            | (_, ["v1", "searches", _, "selection-summary"])
            | (_, ["v1", "treaties", _, "periods", _, "close" | "reopen"]) => Err(method_not_allowed("POST")),
            (_, ["v1", "clearances", _]) => Err(method_not_allowed("GET")),
            _ => Err(route_not_found()),
        }
    }

    /// `POST /v1/clearances`: 201 with the clearance, or 202 with the job.
    async fn post_clearance(&self, request: &ApiRequest<'_>) -> Result<Response<Bytes>, ApiError> {
        let who = identity(request.identity.clone())?;
        let key = idempotency_key(request)?;
        let clearance = parse_clearance(request.body)?;
        self.service.check_size(&clearance)?;
        let now = request.now_secs;
        let response = self
            .idempotent(&who, &key, request, || async {
                let outcome = self.service.clear(&who, &clearance, &key, now).await;
                if let Err(WriteError::Stale(ids)) = &outcome {
                    tracing::info!(
                        operator = who.operator.as_str(),
                        snapshot_id = clearance.snapshot_id.as_str(),
                        moved = ids.len(),
                        "clearance refused: stale snapshot"
                    );
                    metrics::emit(&[("Conflicts", 1.0, Unit::Count)]);
                }
                match outcome? {
                    ClearOutcome::Posted(cleared) => {
                        tracing::info!(
                            operator = who.operator.as_str(),
                            snapshot_id = clearance.snapshot_id.as_str(),
                            clearance_id = %cleared.record.clearance_id,
                            rows = cleared.record.row_count,
                            replayed_from_ledger = cleared.already_posted,
                            "clearance posted"
                        );
                        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
                        metrics::emit(&[
                            ("RowsCleared", f64::from(cleared.record.row_count), Unit::Count),
                            ("ClearSnapshotMs", ms(cleared.timings.snapshot), Unit::Milliseconds),
                            ("ClearLedgerMs", ms(cleared.timings.ledger), Unit::Milliseconds),
                        ]);
                        let mut response =
                            json_response(StatusCode::CREATED, wire::clearance_body(&cleared.record));
                        server_timing(&mut response, &cleared.timings);
                        Ok(response)
                    }
                    // The job runs on; its status is at GET /v1/jobs/{id}.
                    ClearOutcome::Started(job) => {
                        Ok(json_response(StatusCode::ACCEPTED, wire::job_body(&job)))
                    }
                }
            })
            .await?;
        Ok(job_location(response, request.base))
    }

    /// `POST /v1/searches/{id}/selection-summary`: no key, nothing written.
    async fn selection_summary(
        &self,
        request: &ApiRequest<'_>,
        id: &str,
    ) -> Result<Response<Bytes>, ApiError> {
        let who = identity(request.identity.clone())?;
        let id = SnapshotId::parse(id).map_err(|e| ApiError::from(e).with_field("id"))?;
        let selection = parse_selection_summary(request.body)?;
        let summary =
            self.service.selection_summary(&who, &id, &selection, request.now_secs).await.map_err(|e| {
                let error = ApiError::from(e);
                // The snapshot is named by the path here, not the body.
                if error.code == "snapshot_not_found" {
                    error.with_field("id")
                } else {
                    error
                }
            })?;
        Ok(json_response(StatusCode::OK, wire::selection_summary_body(&summary)))
    }

    /// `POST /v1/treaties/{treaty_id}/periods/{period}/close|reopen`:
    /// idempotent like every mutation.
    async fn change_period(
        &self,
        request: &ApiRequest<'_>,
        treaty: &str,
        period: &str,
        action: &str,
    ) -> Result<Response<Bytes>, ApiError> {
        let who = identity(request.identity.clone())?;
        let treaty = TreatyId::parse(treaty)
            .map_err(|e| ApiError::new("invalid_treaty_id", e.to_string()).with_field("treaty_id"))?;
        let period = Period::parse(period)
            .map_err(|e| ApiError::new("invalid_period", format!("the period {e}")).with_field("period"))?;
        let action = PeriodAction::parse(action).ok_or_else(route_not_found)?;
        let key = idempotency_key(request)?;
        let reason = parse_period_change(request.body, action)?;
        // Refused before the key is recorded: a 403 keeps nothing.
        clearance_core::write::check_closer(&who, &treaty)?;
        self.idempotent(&who, &key, request, || async {
            let entry = self
                .service
                .change_period(&who, treaty.clone(), period, action, reason.clone(), &key)
                .await?;
            Ok(json_response(StatusCode::OK, wire::period_entry_body(&entry)))
        })
        .await
    }

    /// Runs `execute` at most once per (operator, key): a repeat of the same
    /// request gets the stored answer with `Idempotency-Replayed: true`, a
    /// different request under the key 422, a repeat while the first runs
    /// 409. Answers below 500 are stored; after a 5xx the key is released so
    /// the client's retry runs again (the ledger's key binding still stops a
    /// second posting).
    async fn idempotent<F, Fut>(
        &self,
        who: &Identity,
        request_key: &RequestKey,
        request: &ApiRequest<'_>,
        execute: F,
    ) -> Result<Response<Bytes>, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Response<Bytes>, ApiError>>,
    {
        let (key, hash) = (&request_key.key, &request_key.request_hash);
        let decision =
            idempotency::begin(&self.idempotency, self.config, &who.operator, key, hash, request.now_secs)
                .await
                .map_err(idempotency_error)?;
        let lease_until_secs = match decision {
            Decision::Execute { lease_until_secs } => lease_until_secs,
            Decision::Replay(stored) => {
                let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
                let mut response = json_response(status, stored.body);
                response.headers_mut().insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
                return Ok(response);
            }
        };
        let outcome = execute().await;
        // The ledger says the key is another request's (its record had
        // expired): this request keeps no record, so the original request
        // is still answered under the key.
        let foreign = matches!(&outcome, Err(e) if e.code == "idempotency_key_reused");
        let response = match outcome {
            Ok(response) => response,
            Err(err) => err.into_response(),
        };
        if response.status().is_server_error() || foreign {
            if let Err(e) = self.idempotency.release(&who.operator, key, hash, lease_until_secs).await {
                tracing::warn!(error = %e, "could not release an idempotency key; it frees when its lease lapses");
            }
        } else {
            let stored =
                StoredResponse { status: response.status().as_u16(), body: response.body().to_vec() };
            if let Err(e) = self.idempotency.complete(&who.operator, key, hash, &stored).await {
                // The ledger holds the key too: a retry after the lease
                // lapses re-runs and gets the posted clearance back.
                tracing::warn!(error = %e, "could not store an idempotent response");
            }
        }
        Ok(response)
    }
}

impl<S, G, M, J, R, E, I> Api for WriteApi<S, G, M, J, R, E, I>
where
    S: SnapshotStore,
    G: ClearanceLedger + EventOutbox,
    M: ScopeMirror,
    J: JobStore,
    R: JobStarter,
    E: EventPublisher,
    I: IdempotencyStore,
{
    fn serves(&self, path: &str) -> bool {
        Self::serves(path)
    }

    async fn handle(&self, request: ApiRequest<'_>) -> Response<Bytes> {
        self.handle_request(request).await
    }
}
