//! The error table: every error code the API answers, with its HTTP status,
//! in one match. Call sites name a code ([`crate::ApiError::new`]); the
//! status comes from here, so one code always has one status.

use http::StatusCode;

/// The status of an error code. A code not named here is a validation
/// error of the request itself (a field, a parameter, a header): 400.
pub fn status_of(code: &str) -> StatusCode {
    match code {
        "unauthenticated" | "invalid_identity" => StatusCode::UNAUTHORIZED,
        "not_entitled" | "closer_role_required" => StatusCode::FORBIDDEN,
        "route_not_found"
        | "snapshot_not_found"
        | "page_out_of_range"
        | "clearance_not_found"
        | "job_not_found" => StatusCode::NOT_FOUND,
        "method_not_allowed" => StatusCode::METHOD_NOT_ALLOWED,
        "version_token_mismatch"
        | "stale_snapshot"
        | "already_reversed"
        | "request_in_flight"
        | "period_closed"
        | "period_already_closed"
        | "period_not_closed" => StatusCode::CONFLICT,
        "body_too_large" | "selection_too_large" | "remittance_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
        // Well-formed requests whose parts do not fit together or with the
        // ledger: nothing is written, and retrying the same cannot help.
        "invalid_period_range"
        | "unknown_ids"
        | "rows_not_open"
        | "no_open_rows"
        | "selection_spans_treaties"
        | "currency_mismatch"
        | "amount_mismatch"
        | "amount_out_of_range"
        | "difference_out_of_tolerance"
        | "idempotency_key_reused"
        // A remittance file is a string to the schema; its lines are read here.
        | "invalid_csv"
        | "remittance_conflict" => StatusCode::UNPROCESSABLE_ENTITY,
        // Ours, not the client's: logged; never retried as an outage.
        "internal_error" | "internal_invariant" => StatusCode::INTERNAL_SERVER_ERROR,
        // A backend is down or slow: retry with the same Idempotency-Key.
        "backend_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_of_error_has_its_status() {
        for (code, status) in [
            ("unauthenticated", 401),
            ("not_entitled", 403),
            ("job_not_found", 404),
            ("method_not_allowed", 405),
            ("stale_snapshot", 409),
            ("period_closed", 409),
            ("closer_role_required", 403),
            ("selection_too_large", 413),
            ("idempotency_key_reused", 422),
            ("internal_invariant", 500),
            ("backend_unavailable", 503),
            ("invalid_treaty_id", 400),
        ] {
            assert_eq!(status_of(code).as_u16(), status, "{code}");
        }
    }
}
