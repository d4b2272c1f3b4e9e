//! The bad-input catalogue: for every endpoint, malformed, oversized,
//! out-of-range, wrong-type, unknown-field and mass-assignment inputs (and a
//! bad identity, a bad path parameter, a wrong method). Each answers 4xx
//! with a stable error code and the field at fault, never a 5xx, and nothing
//! is written: the ledger's row counts, the rows' versions and the DynamoDB
//! items are the same before and after the whole catalogue.
//!
//! Requests go through the local server's router (`LocalStack` as one
//! [`clearance_http::Api`]), over the real PostgreSQL and DynamoDB (moto),
//! against a real snapshot and a real clearance, so a request that got past
//! validation would do real work.

use clearance_core::write::WriteConfig;
use clearance_tests::write_api::{clear, item_count, search, send, with_member as with, Row, Stack};
use http::Method;

const FILTER: &str = r#"{"treaty_ids": ["TR-0001"], "period_from": "2024-01", "period_to": "2024-06", "currency": "USD", "status": "open"}"#;
const OP: Option<(&str, &str)> = Some(("op-a", "*"));

/// One catalogue entry: what is sent and the answer it must get.
struct Case {
    kind: &'static str,
    method: Method,
    path: String,
    body: Vec<u8>,
    identity: Option<(&'static str, &'static str)>,
    key: Option<&'static str>,
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
}

/// A case as operator `op-a` with an Idempotency-Key on every POST.
fn case(
    kind: &'static str,
    method: Method,
    path: impl Into<String>,
    body: impl Into<Vec<u8>>,
    (status, code, field): (u16, &'static str, Option<&'static str>),
) -> Case {
    let key = (method == Method::POST).then_some("catalogue-key");
    Case { kind, method, path: path.into(), body: body.into(), identity: OP, key, status, code, field }
}

fn json(value: &serde_json::Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

fn search_cases() -> Vec<Case> {
    let base: serde_json::Value = serde_json::from_str(FILTER).unwrap_or_default();
    let post = |kind, body: Vec<u8>, answer| case(kind, Method::POST, "/v1/searches", body, answer);
    let many: Vec<String> = (0..51).map(|i| format!("TR-{i:04}")).collect();
    vec![
        post("malformed", b"{\"treaty_ids\": [".to_vec(), (400, "malformed_json", None)),
        post("malformed", [json(&base), b"]".to_vec()].concat(), (400, "malformed_json", None)),
        post("malformed", b"\xff\xfe".to_vec(), (400, "malformed_json", None)),
        post("oversized", vec![b' '; 70 * 1024], (413, "body_too_large", None)),
        post(
            "out of range",
            with(&base, "/period_from", "2024-13".into()),
            (400, "invalid_period", Some("/period_from")),
        ),
        post(
            "out of range",
            with(&base, "/period_to", "2023-12".into()),
            (422, "invalid_period_range", Some("/period_to")),
        ),
        post(
            "out of range",
            with(&base, "/treaty_ids", many.into()),
            (400, "too_many_treaties", Some("/treaty_ids")),
        ),
        post(
            "out of range",
            with(&base, "/treaty_ids", serde_json::json!([])),
            (400, "missing_field", Some("/treaty_ids")),
        ),
        post(
            "out of range",
            with(&base, "/treaty_ids", serde_json::json!(["TR 1"])),
            (400, "invalid_treaty_id", Some("/treaty_ids/0")),
        ),
        post(
            "out of range",
            with(&base, "/currency", "XYZ".into()),
            (400, "invalid_currency", Some("/currency")),
        ),
        post(
            "out of range",
            with(&base, "/status", "pending".into()),
            (400, "invalid_status", Some("/status")),
        ),
        post(
            "wrong type",
            with(&base, "/treaty_ids", "TR-0001".into()),
            (400, "invalid_type", Some("/treaty_ids")),
        ),
        post(
            "wrong type",
            with(&base, "/period_from", 202401.into()),
            (400, "invalid_type", Some("/period_from")),
        ),
        post("wrong type", b"[]".to_vec(), (400, "invalid_type", None)),
        post(
            "missing field",
            br#"{"treaty_ids": ["TR-0001"], "period_from": "2024-01"}"#.to_vec(),
            (400, "missing_field", Some("/period_to")),
        ),
        post("unknown field", with(&base, "/memo", "x".into()), (400, "unknown_field", Some("/memo"))),
        post(
            "mass assignment",
            with(&base, "/operator_id", "op-b".into()),
            (400, "read_only_field", Some("/operator_id")),
        ),
        post(
            "mass assignment",
            with(&base, "/row_version", 1.into()),
            (400, "read_only_field", Some("/row_version")),
        ),
    ]
}

fn page_cases(snapshot: &str) -> Vec<Case> {
    let get = |kind, path: String, answer| case(kind, Method::GET, path, Vec::new(), answer);
    let page = format!("/v1/searches/{snapshot}/pages/0");
    vec![
        get(
            "malformed",
            "/v1/searches/not-a-snapshot/pages/0".into(),
            (400, "invalid_snapshot_id", Some("id")),
        ),
        get("malformed", format!("/v1/searches/{snapshot}/pages/x"), (400, "invalid_page_number", Some("n"))),
        get("malformed", format!("{page}?cedent_id=%zz"), (400, "invalid_query", Some("cedent_id"))),
        get("oversized", format!("{page}?cedent_id={}", "A".repeat(9_000)), (400, "invalid_query", None)),
        get(
            "out of range",
            format!("/v1/searches/{snapshot}/pages/-1"),
            (400, "invalid_page_number", Some("n")),
        ),
        get(
            "out of range",
            format!("/v1/searches/{snapshot}/pages/1234567"),
            (400, "invalid_page_number", Some("n")),
        ),
        get(
            "out of range",
            format!("/v1/searches/{snapshot}/pages/999999"),
            (404, "page_out_of_range", Some("n")),
        ),
        get("out of range", format!("{page}?currency=XYZ"), (400, "invalid_currency", Some("currency"))),
        get("wrong type", format!("{page}?sort=colour"), (400, "invalid_sort", Some("sort"))),
        get(
            "out of range",
            format!("{page}?sort=amount,txn_date,currency,status"),
            (400, "invalid_sort", Some("sort")),
        ),
        get("malformed", format!("{page}?amount_min=1e3"), (400, "invalid_amount", Some("amount_min"))),
        get("out of range", format!("{page}?amount_max=1.001"), (400, "invalid_amount", Some("amount_max"))),
        get(
            "oversized",
            format!("{page}?reference={}", "x".repeat(65)),
            (400, "invalid_reference", Some("reference")),
        ),
        get("malformed", format!("{page}?reference=%07"), (400, "invalid_reference", Some("reference"))),
        get(
            "out of range",
            format!("{page}?txn_date_from=2024-02-30"),
            (400, "invalid_date", Some("txn_date_from")),
        ),
        get("malformed", format!("{page}?period_to=2024-13"), (400, "invalid_period", Some("period_to"))),
        get(
            "oversized",
            format!("{page}?cedent_id={}", vec!["CED-1"; 101].join(",")),
            (400, "too_many_cedents", Some("cedent_id")),
        ),
        get("unknown field", format!("{page}?limit=10"), (400, "unknown_parameter", Some("limit"))),
        get(
            "unknown field",
            format!("{page}?sort=amount&sort=txn_date"),
            (400, "duplicate_parameter", Some("sort")),
        ),
        get(
            "mass assignment",
            format!("{page}?operator_id=op-b"),
            (400, "unknown_parameter", Some("operator_id")),
        ),
        get(
            "unknown snapshot",
            format!("/v1/searches/{}/pages/0", "0".repeat(64)),
            (404, "snapshot_not_found", Some("id")),
        ),
    ]
}

fn clearance_cases(base: &serde_json::Value) -> Vec<Case> {
    let post = |kind, body: Vec<u8>, answer| case(kind, Method::POST, "/v1/clearances", body, answer);
    let ids: Vec<String> = (0..=clearance_core::clearance::SELECTION_IDS_MAX as u128)
        .map(|i| uuid::Uuid::from_u128(i).to_string())
        .collect();
    vec![
        post("malformed", b"{\"snapshot_id\":".to_vec(), (400, "malformed_json", None)),
        post(
            "oversized",
            vec![b' '; clearance_http::CLEARANCE_BODY_BYTES_MAX + 1],
            (413, "body_too_large", None),
        ),
        post(
            "out of range",
            with(base, "/check/amount", "-5.00".into()),
            (400, "invalid_amount", Some("/check/amount")),
        ),
        post(
            "out of range",
            with(base, "/check/amount", "5.001".into()),
            (400, "invalid_amount", Some("/check/amount")),
        ),
        post(
            "out of range",
            with(base, "/check/amount", "1e9".into()),
            (400, "invalid_amount", Some("/check/amount")),
        ),
        post(
            "out of range",
            with(base, "/check/amount", "99999999999999999999.00".into()),
            (400, "invalid_amount", Some("/check/amount")),
        ),
        post(
            "out of range",
            with(base, "/check/received_on", "2024-02-30".into()),
            (400, "invalid_date", Some("/check/received_on")),
        ),
        post(
            "out of range",
            with(base, "/check/currency", "XYZ".into()),
            (400, "invalid_currency", Some("/check/currency")),
        ),
        post(
            "out of range",
            with(base, "/check/number", "".into()),
            (400, "invalid_check_number", Some("/check/number")),
        ),
        post(
            "out of range",
            with(base, "/selection/ids", serde_json::json!([])),
            (400, "empty_selection", Some("/selection/ids")),
        ),
        post(
            "out of range",
            with(base, "/selection/ids", ids.into()),
            (400, "too_many_ids", Some("/selection/ids")),
        ),
        post(
            "out of range",
            with(base, "/selection/ids", serde_json::json!(["nope"])),
            (400, "invalid_id", Some("/selection/ids/0")),
        ),
        post(
            "out of range",
            with(base, "/snapshot_id", "ABC".into()),
            (400, "invalid_snapshot_id", Some("/snapshot_id")),
        ),
        post(
            "out of range",
            with(base, "/version_token", "v9.00".into()),
            (400, "invalid_version_token", Some("/version_token")),
        ),
        post(
            "wrong type",
            with(base, "/check/amount", 12.5.into()),
            (400, "invalid_type", Some("/check/amount")),
        ),
        post(
            "wrong type",
            with(base, "/allow_difference", "yes".into()),
            (400, "invalid_type", Some("/allow_difference")),
        ),
        post(
            "wrong type",
            with(base, "/selection", serde_json::json!(["a"])),
            (400, "invalid_type", Some("/selection/0")),
        ),
        post(
            "wrong type",
            with(base, "/selection", serde_json::json!({"all": false})),
            (400, "invalid_selection", Some("/selection")),
        ),
        post(
            "unknown field",
            with(base, "/check/memo", "x".into()),
            (400, "unknown_field", Some("/check/memo")),
        ),
        post(
            "unknown field",
            with(base, "/selection/some", "x".into()),
            (400, "unknown_field", Some("/selection/some")),
        ),
        post(
            "wrong type",
            with(base, "/selection", serde_json::json!({"all": true, "view": {"currency": 7}})),
            (400, "invalid_type", Some("/selection/view/currency")),
        ),
        post(
            "unknown field",
            with(base, "/selection", serde_json::json!({"all": true, "view": {"sort": "amount"}})),
            (400, "unknown_field", Some("/selection/view/sort")),
        ),
        post(
            "out of range",
            with(base, "/selection", serde_json::json!({"all": true, "view": {"reference": " "}})),
            (400, "invalid_reference", Some("/selection/view/reference")),
        ),
        post(
            "wrong type",
            with(base, "/selection", serde_json::json!({"ids": [uuid::Uuid::nil()], "view": {}})),
            (400, "invalid_selection", Some("/selection")),
        ),
        post(
            "mass assignment",
            with(base, "/status", "cleared".into()),
            (400, "read_only_field", Some("/status")),
        ),
        post(
            "mass assignment",
            with(base, "/clearance_id", uuid::Uuid::nil().to_string().into()),
            (400, "read_only_field", Some("/clearance_id")),
        ),
        post(
            "mass assignment",
            with(base, "/operator_id", "op-b".into()),
            (400, "read_only_field", Some("/operator_id")),
        ),
        post(
            "mass assignment",
            with(base, "/cleared_total", "0".into()),
            (400, "read_only_field", Some("/cleared_total")),
        ),
        Case {
            key: None,
            ..post("missing header", json(base), (400, "missing_idempotency_key", Some("Idempotency-Key")))
        },
        Case {
            key: Some("a b"),
            ..post("malformed header", json(base), (400, "invalid_idempotency_key", Some("Idempotency-Key")))
        },
    ]
}

fn summary_cases(snapshot: &str) -> Vec<Case> {
    let path = format!("/v1/searches/{snapshot}/selection-summary");
    let post = |kind, body: serde_json::Value, answer| Case {
        key: None,
        ..case(kind, Method::POST, path.clone(), json(&body), answer)
    };
    let selection = |s: serde_json::Value| serde_json::json!({ "selection": s });
    vec![
        Case {
            key: None,
            ..case("malformed", Method::POST, path.clone(), b"{".to_vec(), (400, "malformed_json", None))
        },
        Case {
            key: None,
            ..case(
                "oversized",
                Method::POST,
                path.clone(),
                vec![b' '; 5 * 1024 * 1024],
                (413, "body_too_large", None),
            )
        },
        post("missing", serde_json::json!({}), (400, "missing_field", Some("/selection"))),
        post(
            "unknown field",
            serde_json::json!({"selection": {"all": true}, "check": {}}),
            (400, "unknown_field", Some("/check")),
        ),
        post(
            "out of range",
            selection(serde_json::json!({"all": true, "view": {"period_from": "1980-01"}})),
            (400, "invalid_period", Some("/selection/view/period_from")),
        ),
        post(
            "wrong type",
            selection(serde_json::json!({"all": true, "view": {"cedent_id": "CED-1"}})),
            (400, "invalid_type", Some("/selection/view/cedent_id")),
        ),
        post(
            "malformed",
            selection(serde_json::json!({"ids": ["nope"]})),
            (400, "invalid_id", Some("/selection/ids/0")),
        ),
        post(
            "mass assignment",
            serde_json::json!({"selection": {"all": true}, "row_count": 1}),
            (400, "read_only_field", Some("/row_count")),
        ),
        Case {
            key: None,
            ..case(
                "malformed",
                Method::POST,
                "/v1/searches/nope/selection-summary",
                json(&selection(serde_json::json!({"all": true}))),
                (400, "invalid_snapshot_id", Some("id")),
            )
        },
        post(
            "unknown id",
            selection(serde_json::json!({"ids": [uuid::Uuid::nil()]})),
            (422, "unknown_ids", Some("/selection/ids")),
        ),
    ]
}

fn suggestion_cases(snapshot: &str) -> Vec<Case> {
    let path = format!("/v1/searches/{snapshot}/suggestions");
    let post = |kind, body: serde_json::Value, answer| Case {
        key: None,
        ..case(kind, Method::POST, path.clone(), json(&body), answer)
    };
    let check = serde_json::json!({ "amount": "100.00", "currency": "USD" });
    let with = |field: &str, value: serde_json::Value| {
        let mut body = serde_json::json!({ "check": check });
        body[field] = value;
        body
    };
    let line = |reference: &str| serde_json::json!({ "reference": reference });
    let too_many: Vec<serde_json::Value> = (0..10_001).map(|i| line(&format!("R{i}"))).collect();
    vec![
        Case {
            key: None,
            ..case(
                "malformed",
                Method::POST,
                path.clone(),
                b"{\"check\"".to_vec(),
                (400, "malformed_json", None),
            )
        },
        Case {
            key: None,
            ..case(
                "oversized",
                Method::POST,
                path.clone(),
                vec![b' '; 3 * 1024 * 1024],
                (413, "body_too_large", None),
            )
        },
        post("missing field", serde_json::json!({}), (400, "missing_field", Some("/check"))),
        post(
            "out of range",
            serde_json::json!({ "check": { "amount": "0.00", "currency": "USD" } }),
            (400, "invalid_amount", Some("/check/amount")),
        ),
        post(
            "wrong type",
            serde_json::json!({ "check": { "amount": 100, "currency": "USD" } }),
            (400, "invalid_type", Some("/check/amount")),
        ),
        post("unknown field", with("memo", 1.into()), (400, "unknown_field", Some("/memo"))),
        post("mass assignment", with("row_count", 1.into()), (400, "read_only_field", Some("/row_count"))),
        post(
            "out of range",
            with("remittance", serde_json::json!([line("A"), line("\u{7}")])),
            (400, "invalid_reference", Some("/remittance/1/reference")),
        ),
        post(
            "malformed",
            with("remittance", serde_json::json!([{ "reference": "A", "amount": "1.005" }])),
            (400, "invalid_amount", Some("/remittance/0/amount")),
        ),
        post(
            "oversized",
            with("remittance", too_many.into()),
            (413, "remittance_too_large", Some("/remittance")),
        ),
        post(
            "malformed",
            with("remittance_csv", "amount\n1.00\n".into()),
            (422, "invalid_csv", Some("/remittance_csv")),
        ),
        post(
            "malformed",
            with("remittance_csv", "reference,amount\nA,1\nB,2,3\n".into()),
            (422, "invalid_csv", Some("/remittance_csv")),
        ),
        post(
            "oversized",
            with("remittance_csv", format!("reference\n{}", "A\n".repeat(10_001)).into()),
            (413, "remittance_too_large", Some("/remittance_csv")),
        ),
        post(
            "conflict",
            serde_json::json!({ "check": check, "remittance": [line("A")], "remittance_csv": "reference\nA\n" }),
            (422, "remittance_conflict", Some("/remittance_csv")),
        ),
        Case {
            key: None,
            ..case(
                "malformed",
                Method::POST,
                "/v1/searches/nope/suggestions",
                json(&serde_json::json!({ "check": check })),
                (400, "invalid_snapshot_id", Some("id")),
            )
        },
        Case {
            key: None,
            ..case(
                "out of range",
                Method::POST,
                format!("/v1/searches/{}/suggestions", "0".repeat(64)),
                json(&serde_json::json!({ "check": check })),
                (404, "snapshot_not_found", Some("id")),
            )
        },
    ]
}

fn reversal_cases(clearance: &str) -> Vec<Case> {
    let path = format!("/v1/clearances/{clearance}/reversal");
    let post = |kind, body: &[u8], answer| case(kind, Method::POST, path.clone(), body.to_vec(), answer);
    let long = serde_json::json!({ "reason": "x".repeat(2_000) });
    vec![
        post("malformed", b"{\"reason\"", (400, "malformed_json", None)),
        post("oversized", &vec![b' '; 70 * 1024], (413, "body_too_large", None)),
        post("out of range", br#"{"reason": ""}"#, (400, "invalid_reason", Some("/reason"))),
        post("out of range", &json(&long), (400, "invalid_reason", Some("/reason"))),
        post("wrong type", br#"{"reason": 7}"#, (400, "invalid_type", Some("/reason"))),
        post("missing field", b"{}", (400, "missing_field", Some("/reason"))),
        post(
            "unknown field",
            br#"{"reason": "duplicate", "memo": 1}"#,
            (400, "unknown_field", Some("/memo")),
        ),
        post(
            "mass assignment",
            br#"{"reason": "duplicate", "state": "open"}"#,
            (400, "read_only_field", Some("/state")),
        ),
        post(
            "mass assignment",
            br#"{"reason": "duplicate", "reversal_id": "x"}"#,
            (400, "read_only_field", Some("/reversal_id")),
        ),
        case(
            "malformed",
            Method::POST,
            "/v1/clearances/nope/reversal",
            br#"{"reason": "duplicate"}"#.to_vec(),
            (400, "invalid_clearance_id", Some("id")),
        ),
        Case {
            key: None,
            ..post(
                "missing header",
                br#"{"reason": "duplicate"}"#,
                (400, "missing_idempotency_key", Some("Idempotency-Key")),
            )
        },
    ]
}

fn period_cases() -> Vec<Case> {
    let close = "/v1/treaties/TR-0001/periods/2024-03/close";
    let reopen = "/v1/treaties/TR-0001/periods/2024-03/reopen";
    let post = |kind, path: &str, body: &[u8], answer| case(kind, Method::POST, path, body.to_vec(), answer);
    let long = serde_json::json!({ "reason": "x".repeat(600) });
    vec![
        post("malformed", close, b"{\"reason\"", (400, "malformed_json", None)),
        post("oversized", close, &vec![b' '; 70 * 1024], (413, "body_too_large", None)),
        post("wrong type", close, br#"{"reason": 7}"#, (400, "invalid_type", Some("/reason"))),
        post("out of range", close, br#"{"reason": ""}"#, (400, "invalid_reason", Some("/reason"))),
        post("out of range", reopen, &json(&long), (400, "invalid_reason", Some("/reason"))),
        post("missing field", reopen, b"{}", (400, "missing_field", Some("/reason"))),
        post("unknown field", close, br#"{"memo": 1}"#, (400, "unknown_field", Some("/memo"))),
        post("mass assignment", close, br#"{"state": "closed"}"#, (400, "read_only_field", Some("/state"))),
        post(
            "malformed",
            "/v1/treaties/TR_1/periods/2024-03/close",
            b"{}",
            (400, "invalid_treaty_id", Some("treaty_id")),
        ),
        post(
            "out of range",
            "/v1/treaties/TR-0001/periods/2024-13/close",
            b"{}",
            (400, "invalid_period", Some("period")),
        ),
        Case {
            key: None,
            ..post("missing header", close, b"{}", (400, "missing_idempotency_key", Some("Idempotency-Key")))
        },
        // Well-formed, from an operator without the closer role.
        post("no role", close, b"{}", (403, "closer_role_required", None)),
    ]
}

fn read_back_and_job_cases() -> Vec<Case> {
    let get = |kind, path: &str, answer| case(kind, Method::GET, path, Vec::new(), answer);
    vec![
        get("malformed", "/v1/clearances/not-a-uuid", (400, "invalid_clearance_id", Some("id"))),
        get(
            "out of range",
            &format!("/v1/clearances/{}", uuid::Uuid::nil()),
            (404, "clearance_not_found", Some("id")),
        ),
        get("malformed", "/v1/jobs/not-a-uuid", (400, "invalid_job_id", Some("id"))),
        get("out of range", &format!("/v1/jobs/{}", uuid::Uuid::nil()), (404, "job_not_found", Some("id"))),
    ]
}

fn identity_and_method_cases(snapshot: &str, clearance: &str) -> Vec<Case> {
    let routes = [
        (Method::POST, "/v1/searches".to_owned()),
        (Method::GET, format!("/v1/searches/{snapshot}/pages/0")),
        (Method::POST, format!("/v1/searches/{snapshot}/selection-summary")),
        (Method::POST, format!("/v1/searches/{snapshot}/suggestions")),
        (Method::POST, "/v1/clearances".to_owned()),
        (Method::GET, format!("/v1/clearances/{clearance}")),
        (Method::POST, format!("/v1/clearances/{clearance}/reversal")),
        (Method::GET, format!("/v1/jobs/{}", uuid::Uuid::nil())),
        (Method::POST, "/v1/treaties/TR-0001/periods/2024-03/close".to_owned()),
        (Method::POST, "/v1/treaties/TR-0001/periods/2024-03/reopen".to_owned()),
    ];
    let mut cases = Vec::new();
    for (method, path) in routes {
        let body = br#"{"reason": "duplicate"}"#.to_vec();
        let wrong = if method == Method::GET { Method::DELETE } else { Method::PUT };
        cases.push(Case {
            identity: None,
            ..case("no identity", method.clone(), path.clone(), body.clone(), (401, "unauthenticated", None))
        });
        cases.push(Case {
            identity: Some(("op with\ncontrol", "*")),
            ..case(
                "bad identity",
                method.clone(),
                path.clone(),
                body.clone(),
                (401, "invalid_identity", Some("operator")),
            )
        });
        cases.push(case("wrong method", wrong, path, body, (405, "method_not_allowed", None)));
    }
    cases.push(case("unknown route", Method::GET, "/v1/ledger", Vec::new(), (404, "route_not_found", None)));
    cases
}

#[tokio::test]
async fn every_endpoint_answers_bad_input_with_a_4xx_code_and_field_and_writes_nothing() -> anyhow::Result<()>
{
    let stack = Stack::new(5_000).await?;
    let apis = stack.apis(WriteConfig::default()).await?;
    let snap = search(&apis, "op-a", FILTER).await?;
    let row: &Row = snap
        .rows
        .iter()
        .find(|r| r.amount > rust_decimal::Decimal::ZERO)
        .ok_or_else(|| anyhow::anyhow!("no row"))?;
    let posted = clear(&apis, "op-a", &snap, &[row], "setup-clear").await;
    anyhow::ensure!(posted.status == 201, "setup clearance: {}", posted.json);
    let clearance = posted.json["clearance_id"].as_str().unwrap_or_default().to_owned();
    // A fresh snapshot after the clearance: the bodies below are valid but for their one mistake.
    let snap = search(&apis, "op-a", FILTER).await?;
    let open = &snap.rows[0];
    let base = serde_json::json!({
        "snapshot_id": snap.id,
        "version_token": snap.token,
        "selection": { "ids": [open.id] },
        "check": { "number": "CHK-1", "amount": open.amount.abs().max(rust_decimal::Decimal::ONE).to_string(), "currency": "USD", "received_on": "2024-07-01" },
        "allow_difference": true,
        "overpayment_to_unapplied": true,
    });

    let mut cases = search_cases();
    cases.extend(page_cases(&snap.id));
    cases.extend(clearance_cases(&base));
    cases.extend(summary_cases(&snap.id));
    cases.extend(suggestion_cases(&snap.id));
    cases.extend(reversal_cases(&clearance));
    cases.extend(period_cases());
    cases.extend(read_back_and_job_cases());
    cases.extend(identity_and_method_cases(&snap.id, &clearance));

    let versions = "SELECT coalesce(sum(row_version), 0)::bigint FROM transactions";
    let before = (
        stack.ledger_counts().await?,
        stack.count(versions).await?,
        item_count(&stack.table.client, &stack.table.name).await?,
    );
    let mut kinds = std::collections::BTreeSet::new();
    for c in &cases {
        let reply = send(&apis, c.method.clone(), &c.path, &c.body, c.identity, c.key).await;
        let what = format!(
            "{} {} ({}): {}",
            c.method,
            c.path.chars().take(90).collect::<String>(),
            c.kind,
            reply.json
        );
        assert!((400..500).contains(&reply.status), "not a 4xx: {what}");
        assert_eq!(
            (reply.status, reply.json["error"].as_str(), reply.json["field"].as_str()),
            (c.status, Some(c.code), c.field),
            "{what}"
        );
        assert!(reply.json["message"].as_str().is_some_and(|m| !m.is_empty()), "a message: {what}");
        kinds.insert(c.kind);
    }
    let after = (
        stack.ledger_counts().await?,
        stack.count(versions).await?,
        item_count(&stack.table.client, &stack.table.name).await?,
    );
    assert_eq!(before, after, "nothing written by {} bad requests", cases.len());
    for kind in ["malformed", "oversized", "out of range", "wrong type", "unknown field", "mass assignment"] {
        assert!(kinds.contains(kind), "the catalogue has {kind} inputs");
    }
    stack.drop().await
}
