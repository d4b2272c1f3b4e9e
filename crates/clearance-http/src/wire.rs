//! Wire types: request DTOs (unknown fields refused) and response bodies.

use clearance_core::batch::JobStatus;
use clearance_core::clearance::{ClearanceInput, ClearanceRecord, JournalLine, Selection};
use clearance_core::ports::SnapshotMeta;
use clearance_core::read::{Page, SearchOutcome};
use clearance_core::selection::SelectionSummary;
use clearance_core::snapshot::FilterInput;
use clearance_core::suggest::{Proposed, RemittanceInput, SuggestInput, SuggestRequest, Suggestions};
use clearance_core::views::{ViewFilterInput, ViewSpec};
use serde::Deserialize;

use crate::ApiError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    pub treaty_ids: Vec<String>,
    #[serde(default)]
    pub cedent_ids: Vec<String>,
    pub period_from: String,
    pub period_to: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub currency: Option<String>,
}

impl From<SearchRequest> for FilterInput {
    fn from(r: SearchRequest) -> Self {
        Self {
            treaty_ids: r.treaty_ids,
            cedent_ids: r.cedent_ids,
            period_from: r.period_from,
            period_to: r.period_to,
            status: r.status,
            currency: r.currency,
        }
    }
}

/// Fields the server owns: a client naming one is refused as
/// `read_only_field` (mass assignment), not silently ignored.
pub const SERVER_OWNED_FIELDS: [&str; 12] = [
    "status",
    "row_version",
    "clearance_id",
    "state",
    "operator_id",
    "cleared_total",
    "difference",
    "row_count",
    "created_at",
    "treaty_id",
    "reversal_id",
    "journal",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectionWire {
    #[serde(default)]
    pub ids: Option<Vec<String>>,
    #[serde(default)]
    pub all: Option<bool>,
    #[serde(default)]
    pub except: Option<Vec<String>>,
    /// The view an all-selection is taken from (its filter parameters;
    /// `sort` is not one).
    #[serde(default)]
    pub view: Option<ViewWire>,
}

impl SelectionWire {
    /// Validates the selection.
    ///
    /// # Errors
    /// [`clearance_core::snapshot::InputError`] with the field's pointer.
    pub fn parse(&self) -> Result<Selection, clearance_core::snapshot::InputError> {
        Selection::parse(
            self.ids.as_deref(),
            self.all,
            self.except.as_deref(),
            self.view.clone().map(ViewFilterInput::from).as_ref(),
        )
    }
}

/// A view's filter in a body: the page query's parameter names, the cedents
/// as an array.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewWire {
    #[serde(default)]
    pub cedent_id: Option<Vec<String>>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub amount_min: Option<String>,
    #[serde(default)]
    pub amount_max: Option<String>,
    #[serde(default)]
    pub reference: Option<String>,
    #[serde(default)]
    pub txn_date_from: Option<String>,
    #[serde(default)]
    pub txn_date_to: Option<String>,
    #[serde(default)]
    pub period_from: Option<String>,
    #[serde(default)]
    pub period_to: Option<String>,
}

impl From<ViewWire> for ViewFilterInput {
    fn from(v: ViewWire) -> Self {
        Self {
            cedent_id: v.cedent_id,
            currency: v.currency,
            amount_min: v.amount_min,
            amount_max: v.amount_max,
            reference: v.reference,
            txn_date_from: v.txn_date_from,
            txn_date_to: v.txn_date_to,
            period_from: v.period_from,
            period_to: v.period_to,
        }
    }
}

/// `POST /v1/searches/{id}/selection-summary`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectionSummaryRequestWire {
    pub selection: SelectionWire,
}

/// `POST /v1/searches/{id}/suggestions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuggestRequestWire {
    pub check: SuggestCheckWire,
    #[serde(default)]
    pub remittance: Option<Vec<RemittanceWire>>,
    /// A remittance file's text: a header naming `reference` (and
    /// optionally `amount`), then one line per item.
    #[serde(default)]
    pub remittance_csv: Option<String>,
}

/// The check a suggestion is for: what it pays, not yet its number.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuggestCheckWire {
    pub amount: String,
    pub currency: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemittanceWire {
    pub reference: String,
    #[serde(default)]
    pub amount: Option<String>,
}

impl From<SuggestRequestWire> for SuggestInput {
    fn from(r: SuggestRequestWire) -> Self {
        Self {
            amount: r.check.amount,
            currency: r.check.currency,
            remittance: r.remittance.map(|lines| {
                lines
                    .into_iter()
                    .map(|l| RemittanceInput { reference: l.reference, amount: l.amount })
                    .collect()
            }),
            remittance_csv: r.remittance_csv,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckWire {
    pub number: String,
    /// A decimal string: money is never a JSON number.
    pub amount: String,
    pub currency: String,
    pub received_on: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClearanceRequestWire {
    pub snapshot_id: String,
    pub version_token: String,
    pub selection: SelectionWire,
    pub check: CheckWire,
    #[serde(default)]
    pub allow_difference: bool,
    /// Books an overpayment beyond the tolerance to unapplied cash.
    #[serde(default)]
    pub overpayment_to_unapplied: bool,
}

impl From<ClearanceRequestWire> for ClearanceInput {
    fn from(r: ClearanceRequestWire) -> Self {
        Self {
            snapshot_id: r.snapshot_id,
            version_token: r.version_token,
            ids: r.selection.ids,
            all: r.selection.all,
            except: r.selection.except,
            view: r.selection.view.map(ViewFilterInput::from),
            check_number: r.check.number,
            check_amount: r.check.amount,
            check_currency: r.check.currency,
            received_on: r.check.received_on,
            allow_difference: r.allow_difference,
            overpayment_to_unapplied: r.overpayment_to_unapplied,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReversalRequestWire {
    pub reason: String,
}

/// A period's close or reopen (the reason is mandatory for a reopen).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodRequestWire {
    #[serde(default)]
    pub reason: Option<String>,
}

fn journal_json(lines: &[JournalLine], currency: &str) -> serde_json::Value {
    lines
        .iter()
        .map(|l| {
            serde_json::json!({
                "account": l.account.as_str(),
                "debit": l.debit.to_string(),
                "credit": l.credit.to_string(),
                "currency": currency,
            })
        })
        .collect()
}

/// The body of a clearance (`POST /v1/clearances`, `GET /v1/clearances/{id}`,
/// the reversal).
pub fn clearance_body(record: &ClearanceRecord) -> Vec<u8> {
    let currency = record.check.currency.as_str();
    let filter: serde_json::Value =
        serde_json::from_str(&record.snapshot_filter).unwrap_or(serde_json::Value::Null);
    let reversal = record.reversal.as_ref().map(|r| {
        let mirrored: Vec<JournalLine> = record
            .journal
            .iter()
            .map(|l| JournalLine { account: l.account, debit: l.credit, credit: l.debit })
            .collect();
        serde_json::json!({
            "reversal_id": r.reversal_id,
            "reason": r.reason,
            "operator_id": r.operator_id,
            "created_at": r.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "journal": journal_json(&mirrored, currency),
        })
    });
    serde_json::json!({
        "clearance_id": record.clearance_id,
        "state": record.state().as_str(),
        "treaty_id": record.treaty_id.as_str(),
        "row_count": record.row_count,
        "cleared_total": record.cleared_total.to_string(),
        "difference": record.difference.to_string(),
        "currency": currency,
        "check": {
            "number": record.check.number,
            "amount": record.check.amount.to_string(),
            "currency": currency,
            "received_on": record.check.received_on.to_string(),
        },
        "operator_id": record.operator_id,
        "snapshot_id": record.snapshot_id,
        "snapshot_filter": filter,
        "version_token": record.version_token,
        "created_at": record.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "journal": journal_json(&record.journal, currency),
        "reversal": reversal,
    })
    .to_string()
    .into_bytes()
}

/// The body of a job (`202` of `POST /v1/clearances`, `GET /v1/jobs/{id}`).
pub fn job_body(job: &JobStatus) -> Vec<u8> {
    serde_json::json!({
        "job_id": job.job_id,
        "state": job.state.as_str(),
        "treaty_id": job.treaty_id.as_str(),
        "chunks_total": job.chunks_total,
        "chunks_done": job.chunks_done,
        "row_count": job.row_count,
        "clearance_id": job.clearance_id,
        "error": job.error,
        "created_at": job.created_at_secs,
        "updated_at": job.updated_at_secs,
    })
    .to_string()
    .into_bytes()
}

/// Deserializes a JSON body, answering with the JSON pointer of the field
/// that failed. A field the server owns ([`SERVER_OWNED_FIELDS`]) that the
/// body type does not take is `read_only_field` (mass assignment), any
/// other unknown one `unknown_field`.
///
/// # Errors
/// [`ApiError`] 400: `malformed_json`, `read_only_field`, `unknown_field`,
/// `missing_field` or `invalid_type`.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        // A JSON pointer (RFC 6901): `/check/amount`, `/selection/ids/3`.
        let pointer: String = err
            .path()
            .iter()
            .map(|segment| match segment {
                serde_path_to_error::Segment::Seq { index } => format!("/{index}"),
                serde_path_to_error::Segment::Map { key } => {
                    format!("/{}", key.replace('~', "~0").replace('/', "~1"))
                }
                serde_path_to_error::Segment::Enum { variant } => format!("/{variant}"),
                serde_path_to_error::Segment::Unknown => "/?".to_owned(),
            })
            .collect();
        let inner = err.into_inner();
        let message = inner.to_string();
        let (code, field) = if inner.is_syntax() || inner.is_eof() {
            ("malformed_json", String::new())
        } else if message.starts_with("unknown field `") {
            // The path already ends at the unknown field.
            let name = pointer.rsplit('/').next().unwrap_or("");
            if SERVER_OWNED_FIELDS.contains(&name) {
                let message = format!("{name} is set by the server and cannot be sent");
                return ApiError::new("read_only_field", message).with_field(pointer);
            }
            ("unknown_field", pointer)
        } else if let Some(name) = message.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
            ("missing_field", format!("{pointer}/{name}"))
        } else {
            ("invalid_type", pointer)
        };
        let error = ApiError::new(code, message);
        if field.is_empty() {
            error
        } else {
            error.with_field(field)
        }
    })?;
    de.end().map_err(|e| ApiError::new("malformed_json", e.to_string()))?;
    Ok(value)
}

/// Decodes `%XX` escapes and `+` in a query value; `None` when malformed or
/// not UTF-8.
pub fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = raw.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn push_page(out: &mut Vec<u8>, page: &Page) {
    out.extend_from_slice(b"{\"snapshot_id\":\"");
    out.extend_from_slice(page.snapshot_id.as_str().as_bytes());
    out.extend_from_slice(
        format!(
            "\",\"number\":{},\"page_count\":{},\"row_count\":{},\"totals\":{},\"stale\":{},\"rows\":",
            page.number,
            page.page_count,
            page.row_count,
            serde_json::to_string(&page.totals).unwrap_or_else(|_| "[]".to_owned()),
            page.stale
        )
        .as_bytes(),
    );
    // The stored rows are the JSON array this API returns: spliced, never
    // re-serialized.
    out.extend_from_slice(&page.rows_json);
    out.push(b'}');
}

/// The body of `GET /v1/searches/{id}/pages/{n}`.
/// A page's strong `ETag`: the snapshot, the view, the page number and the
/// stale flag, which together fix every byte of the page's body (a view's
/// pages never change; only the flag does).
pub fn page_etag(page: &Page, view: &ViewSpec) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(page.snapshot_id.as_str().as_bytes());
    hasher.update(b"\n");
    hasher.update(view.canonical().as_bytes());
    hasher.update(format!("\n{}\n{}", page.number, page.stale).as_bytes());
    format!("\"{}\"", &hex::encode(hasher.finalize())[..32])
}

pub fn page_body(page: &Page) -> Vec<u8> {
    let mut out = Vec::with_capacity(page.rows_json.len() + 256);
    push_page(&mut out, page);
    out
}

/// The body of `POST /v1/searches/{id}/selection-summary`.
pub fn selection_summary_body(summary: &SelectionSummary) -> Vec<u8> {
    serde_json::json!({
        "row_count": summary.row_count,
        "treaty_id": summary.treaty_id.as_ref().map(|t| t.as_str()),
        "totals": summary.totals,
        "not_open": { "count": summary.not_open_count, "ids": summary.not_open_ids },
        "mode": summary.mode.as_str(),
    })
    .to_string()
    .into_bytes()
}

/// A proposal's selection, as `POST /v1/clearances` takes it.
fn proposed_selection(selection: &Proposed) -> serde_json::Value {
    match selection {
        Proposed::Ids(ids) => serde_json::json!({ "ids": ids }),
        Proposed::Group { cedent, currency, period } => {
            let period = period.map(|p| p.to_string());
            serde_json::json!({
                "all": true,
                "except": [],
                "view": {
                    "cedent_id": [cedent.as_str()],
                    "currency": currency.as_str(),
                    "period_from": period,
                    "period_to": period,
                },
            })
        }
    }
}

/// The body of `POST /v1/searches/{id}/suggestions`.
pub fn suggestions_body(meta: &SnapshotMeta, request: &SuggestRequest, out: &Suggestions) -> Vec<u8> {
    let currency = request.currency.as_str();
    let suggestions: Vec<serde_json::Value> = out
        .suggestions
        .iter()
        .zip(1_u32..)
        .map(|(s, rank)| {
            serde_json::json!({
                "rank": rank,
                "strategy": s.strategy.as_str(),
                "reason": s.reason,
                "treaty_id": s.treaty_id.as_str(),
                "selection": proposed_selection(&s.selection),
                "row_count": s.row_count,
                "total": { "amount": s.total.to_string(), "currency": currency },
                "difference": s.difference.to_string(),
            })
        })
        .collect();
    let unmatched: Vec<serde_json::Value> = out
        .unmatched
        .iter()
        .map(|u| {
            serde_json::json!({
                "line": u.line.line,
                "reference": u.line.reference,
                "amount": u.line.amount.map(|a| a.to_string()),
                "reason": u.reason.as_str(),
            })
        })
        .collect();
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let t = &out.timings;
    serde_json::json!({
        "snapshot_id": meta.id.as_str(),
        "version_token": meta.version_token.to_string(),
        "check": { "amount": request.amount.to_string(), "currency": currency },
        "suggestions": suggestions,
        "unmatched": { "count": out.unmatched_count, "lines": unmatched },
        "search": {
            "candidates": out.candidates,
            "groups": out.search.groups,
            "groups_searched": out.search.groups_searched,
            "work": out.search.work,
            "stopped_by": out.search.stopped_by,
        },
        "timings_ms": {
            "reference": ms(t.reference),
            "single_row": ms(t.single_row),
            "totals": ms(t.totals),
            "exact_sum": ms(t.exact_sum),
        },
    })
    .to_string()
    .into_bytes()
}

/// The body of `POST /v1/searches`.
pub fn search_body(outcome: &SearchOutcome) -> Vec<u8> {
    let meta = &outcome.meta;
    let head = serde_json::json!({
        "snapshot_id": meta.id.as_str(),
        "version_token": meta.version_token.to_string(),
        "row_count": meta.row_count,
        "page_count": meta.page_count,
        "page_size": meta.page_size,
        "cache": outcome.cache.as_str(),
        "expires_at": meta.expires_at_secs,
        "totals": meta.summary.totals,
        "groups": { "by_cedent": meta.summary.by_cedent, "by_period": meta.summary.by_period },
        "closed_periods": meta.summary.closed_periods,
        "timings_ms": {
            "sql": outcome.timings.sql.as_secs_f64() * 1e3,
            "encode": outcome.timings.encode.as_secs_f64() * 1e3,
            "store": outcome.timings.store.as_secs_f64() * 1e3,
            "read_encode_wall": outcome.timings.read_encode_wall.as_secs_f64() * 1e3,
        },
    })
    .to_string();
    let mut out = Vec::with_capacity(head.len() + outcome.page.rows_json.len() + 256);
    // Replace the closing brace with the page.
    out.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
    out.extend_from_slice(b",\"page\":");
    push_page(&mut out, &outcome.page);
    out.push(b'}');
    out
}

/// The body of a period's close or reopen (ADR 0015).
pub fn period_entry_body(entry: &clearance_core::closes::PeriodEntry) -> Vec<u8> {
    serde_json::json!({
        "treaty_id": entry.treaty.as_str(),
        "period": entry.period.to_string(),
        "state": entry.action.state(),
        "action": entry.action.as_str(),
        "reason": entry.reason,
        "operator_id": entry.operator_id,
        "at": entry.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_name_the_field() {
        let cases: [(&str, &str, Option<&str>); 4] = [
            ("{", "malformed_json", None),
            (
                r#"{"treaty_ids":["TR-1"],"period_from":"2024-01","period_to":"2024-02","status":"open","bogus":1}"#,
                "unknown_field",
                Some("/bogus"),
            ),
            (r#"{"treaty_ids":["TR-1"],"period_to":"2024-02"}"#, "missing_field", Some("/period_from")),
            (
                r#"{"treaty_ids":"TR-1","period_from":"2024-01","period_to":"2024-02"}"#,
                "invalid_type",
                Some("/treaty_ids"),
            ),
        ];
        for (body, code, field) in cases {
            let err = parse_json::<SearchRequest>(body.as_bytes()).err();
            assert_eq!(
                err.as_ref().map(|e| (e.code, e.field.as_deref())),
                Some((code, field)),
                "{body}: {err:?}"
            );
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("amount%3Adesc").as_deref(), Some("amount:desc"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%"), None);
    }
}
