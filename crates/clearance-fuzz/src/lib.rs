//! The bodies of the fuzz targets: every parser of untrusted input, fed the
//! fuzzer's bytes (or a structure built from them), and what each must keep
//! beyond not panicking:
//!
//! - a refusal is a 4xx with a stable code (never a 5xx, never a panic);
//! - what is accepted round-trips: the canonical filter parses back to
//!   itself, a version token or snapshot id is exactly the spelling this
//!   service issues, a page number prints back to its digits;
//! - the CSV loader's second read of a record sees what its first saw.
//!
//! `fuzz/` (cargo-fuzz, nightly) runs each of [`TARGETS`]; `make fuzz
//! SECS=60` runs each for that long. `tests/fuzz_regressions.rs` replays
//! every file under `fuzz/regressions/<target>/` through the same function on
//! the stable toolchain, so a crash once found stays a test.

use std::collections::BTreeMap;
use std::io::Cursor;

use arbitrary::{Arbitrary, Unstructured};
use clearance_core::access::{Entitlement, Identity};
use clearance_core::batch::{decode_chunk, encode_chunk};
use clearance_core::idempotency::{request_hash, IdempotencyKey};
use clearance_core::money::Amount;
use clearance_core::snapshot::{SnapshotId, VersionToken};
use clearance_http::{parse_page_number, parse_search, parse_view, ApiError};
use clearance_pg::load::LoadSource;

/// One fuzz target: its name (the binary in `fuzz/fuzz_targets/`) and body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, by name.
pub const TARGETS: [Target; 14] = [
    ("search_body", search_body),
    ("search_fields", search_fields),
    ("page_query", page_query),
    ("view_fields", view_fields),
    ("selection_summary_body", selection_summary_body),
    ("suggestions_body", suggestions_body),
    ("clearance_body", clearance_body),
    ("clearance_fields", clearance_fields),
    ("version_token", version_token),
    ("idempotency_key", idempotency_key),
    ("identity_claims", identity_claims),
    ("csv_file", csv_file),
    ("step_payload", step_payload),
    ("stored_chunk", stored_chunk),
];

/// A refusal must be the client's: 4xx with a code and a message.
fn refused(err: &ApiError) {
    assert!(err.status.is_client_error(), "{} answered {}: {}", err.code, err.status, err.message);
    assert!(!err.code.is_empty() && !err.message.is_empty());
}

/// `POST /v1/searches` bodies as raw bytes. An accepted filter's canonical
/// text is itself a body that parses to the same filter.
pub fn search_body(data: &[u8]) {
    match parse_search(data) {
        Ok(filter) => {
            let canonical = filter.canonical();
            match parse_search(canonical.as_bytes()) {
                Ok(again) => assert_eq!(again, filter, "{canonical}"),
                Err(err) => panic!("the canonical filter {canonical} is refused: {err:?}"),
            }
        }
        Err(err) => refused(&err),
    }
}

/// Strings the structure-aware targets draw from: mostly near-valid values
/// (so the fuzzer gets past the JSON layer into the validation) and some
/// arbitrary text.
#[derive(Debug, Arbitrary)]
enum Text {
    Code(u16),
    Period(u16, u8),
    Date(u16, u8, u8),
    Decimal(i64, u8),
    Uuid(u128),
    Currency(u8),
    Raw(String),
}

impl Text {
    fn render(&self) -> String {
        const CURRENCIES: [&str; 6] = ["USD", "EUR", "GBP", "usd", "XXX", ""];
        match self {
            Self::Code(n) => format!("TR-{:04}", n % 10_000),
            Self::Period(y, m) => format!("{}-{:02}", 1990 + y % 60, m % 14),
            Self::Date(y, m, d) => format!("{}-{:02}-{:02}", 1990 + y % 60, m % 14, d % 33),
            Self::Decimal(units, places) => {
                let places = u32::from(places % 4);
                let scale = 10_i64.pow(places);
                if places == 0 {
                    units.to_string()
                } else {
                    format!(
                        "{}.{:0width$}",
                        units / scale,
                        (units % scale).unsigned_abs(),
                        width = places as usize
                    )
                }
            }
            Self::Uuid(n) => format!(
                "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                n >> 96,
                (n >> 80) & 0xffff,
                (n >> 68) & 0xfff,
                (n >> 56) & 0xfff,
                n & 0xffff_ffff_ffff
            ),
            Self::Currency(n) => CURRENCIES[usize::from(*n) % CURRENCIES.len()].to_owned(),
            Self::Raw(s) => s.clone(),
        }
    }
}

fn texts(values: &[Text]) -> Vec<String> {
    values.iter().map(Text::render).collect()
}

/// A search body built from structure, with the occasional extra member
/// (unknown fields and server-owned ones must be refused).
#[derive(Debug, Arbitrary)]
struct SearchFields {
    treaty_ids: Option<Vec<Text>>,
    cedent_ids: Option<Vec<Text>>,
    period_from: Option<Text>,
    period_to: Option<Text>,
    status: Option<Text>,
    currency: Option<Text>,
    extra: Option<(String, Text)>,
}

/// [`search_body`] on bodies built from [`SearchFields`].
pub fn search_fields(data: &[u8]) {
    let Ok(fields) = SearchFields::arbitrary(&mut Unstructured::new(data)) else { return };
    let mut body = BTreeMap::new();
    let mut put = |key: &str, value: serde_json::Value| {
        body.insert(key.to_owned(), value);
    };
    if let Some(v) = &fields.treaty_ids {
        put("treaty_ids", texts(v).into());
    }
    if let Some(v) = &fields.cedent_ids {
        put("cedent_ids", texts(v).into());
    }
    for (key, value) in [
        ("period_from", &fields.period_from),
        ("period_to", &fields.period_to),
        ("status", &fields.status),
        ("currency", &fields.currency),
    ] {
        if let Some(v) = value {
            put(key, v.render().into());
        }
    }
    if let Some((key, value)) = &fields.extra {
        put(key, value.render().into());
    }
    if let Ok(json) = serde_json::to_vec(&body) {
        search_body(&json);
    }
}

/// `GET /v1/searches/{id}/pages/{n}?sort=...&cedent_id=...&currency=...`:
/// the first line is the page number, the rest the query string.
pub fn page_query(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (number, query) = text.split_once('\n').unwrap_or((text, ""));
    match parse_page_number(number) {
        Ok(n) => assert_eq!(n.to_string(), number.trim_start_matches('0').max("0").to_owned()),
        Err(err) => refused(&err),
    }
    if let Err(err) = parse_view(Some(query)) {
        refused(&err);
    }
}

/// A page query built from structure: near-valid values for every view
/// parameter, in the order given. An accepted view is the same view
/// whatever the parameters' order, and at most three sort keys survive.
#[derive(Debug, Arbitrary)]
struct ViewFields {
    sort: Option<Vec<(u8, bool)>>,
    params: Vec<(u8, Text)>,
}

/// [`parse_view`] on queries built from [`ViewFields`].
pub fn view_fields(data: &[u8]) {
    const SORTS: [&str; 9] = [
        "amount",
        "txn_date",
        "cedent_id",
        "currency",
        "reference",
        "status",
        "treaty_id",
        "accounting_period",
        "colour",
    ];
    let Ok(f) = ViewFields::arbitrary(&mut Unstructured::new(data)) else { return };
    let mut pairs: Vec<String> = f
        .params
        .iter()
        .map(|(name, value)| {
            let name = clearance_core::views::FILTER_PARAMS[usize::from(*name) % 9];
            let value = match (name, value) {
                ("cedent_id", Text::Code(n)) => format!("CED-{n},CED-{}", n / 2),
                (_, v) => v.render(),
            };
            format!("{name}={}", percent_encode(&value))
        })
        .collect();
    if let Some(keys) = &f.sort {
        let keys: Vec<String> = keys
            .iter()
            .map(|(k, desc)| format!("{}:{}", SORTS[usize::from(*k) % 9], if *desc { "desc" } else { "asc" }))
            .collect();
        pairs.push(format!("sort={}", keys.join(",")));
    }
    let forward = parse_view(Some(&pairs.join("&")));
    pairs.reverse();
    let backward = parse_view(Some(&pairs.join("&")));
    match (forward, backward) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.canonical(), b.canonical(), "the order of parameters changed the view")
        }
        (Err(a), Err(b)) => {
            refused(&a);
            refused(&b);
        }
        (a, b) => panic!("the order of parameters changed the answer: {a:?} / {b:?}"),
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.:".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `POST /v1/searches/{id}/selection-summary` bodies as raw bytes: a
/// refusal is a 4xx; an accepted selection names at most the id limit.
pub fn selection_summary_body(data: &[u8]) {
    match clearance_http::parse_selection_summary(data) {
        Ok(selection) => {
            assert!(selection.named().len() <= clearance_core::clearance::SELECTION_IDS_MAX);
        }
        Err(err) => refused(&err),
    }
}

/// `POST /v1/searches/{id}/suggestions` bodies as raw bytes: a refusal is
/// a 4xx; an accepted request holds at most the line limit, and each
/// line's reference and amount print back as parsed.
pub fn suggestions_body(data: &[u8]) {
    match clearance_http::parse_suggestions(data) {
        Ok(request) => {
            assert!(request.remittance.len() <= clearance_core::suggest::REMITTANCE_LINES_MAX);
            assert!(request.amount > Amount::ZERO);
            for line in &request.remittance {
                assert!(!line.reference.is_empty() && line.line >= 1);
                if let Some(amount) = line.amount {
                    assert_eq!(Amount::parse(&amount.to_string()).ok(), Some(amount));
                }
            }
        }
        Err(err) => refused(&err),
    }
}

/// `POST /v1/clearances` and `POST /v1/clearances/{id}/reversal` bodies as
/// raw bytes. An accepted check amount prints back to the same amount.
pub fn clearance_body(data: &[u8]) {
    match clearance_http::parse_clearance(data) {
        Ok(request) => {
            let amount = request.check.amount;
            assert!(amount.as_decimal().scale() <= 2, "{amount}");
            assert_eq!(Amount::parse(&amount.to_string()).ok(), Some(amount));
            // A token is taken as sent, shaped as the service issues them.
            assert!(VersionToken::check_shape(&request.version_token).is_ok());
        }
        Err(err) => refused(&err),
    }
    if let Err(err) = clearance_http::parse_reversal(data) {
        refused(&err);
    }
}

#[derive(Debug, Arbitrary)]
struct ClearanceFields {
    snapshot_id: Option<Text>,
    version_token: Option<Vec<(Text, i64)>>,
    ids: Option<Vec<Text>>,
    all: Option<bool>,
    except: Option<Vec<Text>>,
    view: Option<Vec<(u8, Text)>>,
    number: Option<Text>,
    amount: Option<Text>,
    currency: Option<Text>,
    received_on: Option<Text>,
    allow_difference: Option<bool>,
    extra: Option<(String, Text)>,
}

/// [`clearance_body`] on bodies built from [`ClearanceFields`]: valid-looking
/// snapshot ids, tokens, UUIDs, amounts and dates in the right places.
pub fn clearance_fields(data: &[u8]) {
    let Ok(f) = ClearanceFields::arbitrary(&mut Unstructured::new(data)) else { return };
    let mut selection = serde_json::Map::new();
    if let Some(ids) = &f.ids {
        selection.insert("ids".into(), texts(ids).into());
    }
    if let Some(all) = f.all {
        selection.insert("all".into(), all.into());
    }
    if let Some(except) = &f.except {
        selection.insert("except".into(), texts(except).into());
    }
    if let Some(view) = &f.view {
        let mut filter = serde_json::Map::new();
        for (name, value) in view {
            let name = clearance_core::views::FILTER_PARAMS[usize::from(*name) % 9];
            let value: serde_json::Value =
                if name == "cedent_id" { vec![value.render()].into() } else { value.render().into() };
            filter.insert(name.into(), value);
        }
        selection.insert("view".into(), filter.into());
    }
    let mut check = serde_json::Map::new();
    for (key, value) in [
        ("number", &f.number),
        ("amount", &f.amount),
        ("currency", &f.currency),
        ("received_on", &f.received_on),
    ] {
        if let Some(v) = value {
            check.insert(key.into(), v.render().into());
        }
    }
    let mut body = serde_json::Map::new();
    if let Some(id) = &f.snapshot_id {
        let id = match id {
            Text::Uuid(n) => format!("{n:032x}{n:032x}"),
            other => other.render(),
        };
        body.insert("snapshot_id".into(), id.into());
    }
    if let Some(pairs) = &f.version_token {
        let text: Vec<String> = pairs.iter().map(|(t, v)| format!("{}={v}", t.render())).collect();
        body.insert("version_token".into(), format!("v1.{}", hex(text.join(";").as_bytes())).into());
    }
    body.insert("selection".into(), selection.into());
    body.insert("check".into(), check.into());
    if let Some(allow) = f.allow_difference {
        body.insert("allow_difference".into(), allow.into());
    }
    if let Some((key, value)) = &f.extra {
        body.insert(key.clone(), value.render().into());
    }
    if let Ok(json) = serde_json::to_vec(&body) {
        clearance_body(&json);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Version tokens and snapshot ids (from request bodies and paths): only the
/// exact spelling this service issues is accepted.
pub fn version_token(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(token) = VersionToken::parse(text) {
        assert_eq!(token.to_string(), text);
    }
    if let Ok(id) = SnapshotId::parse(text) {
        assert_eq!(id.as_str(), text);
    }
}

/// The `Idempotency-Key` header: accepted keys are kept byte for byte; the
/// request hash is a pure function of its inputs.
pub fn idempotency_key(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match IdempotencyKey::parse(Some(text)) {
        Ok(key) => assert_eq!(key.as_str(), text),
        Err(err) => assert!(err.code.ends_with("idempotency_key"), "{}", err.code),
    }
    assert_eq!(request_hash("POST", text, data), request_hash("POST", text, data));
}

/// The JWT authorizer's claims: `sub` (first line) and `treaties` (the
/// rest). An accepted treaty list spelled back comma-separated is the same
/// entitlement.
pub fn identity_claims(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (operator, treaties) = text.split_once('\n').unwrap_or((text, ""));
    if let Ok(identity) = Identity::parse(operator, treaties) {
        if let Entitlement::Treaties(set) = &identity.entitlement {
            let spelled: Vec<&str> = set.iter().map(|t| t.as_str()).collect();
            assert_eq!(Entitlement::parse(&spelled.join(",")).ok(), Some(identity.entitlement.clone()));
        }
    }
}

/// Upstream CSV files: a load either refuses with a line number within the
/// file or yields records that a second read by position sees identically.
pub fn csv_file(data: &[u8]) {
    let mut source = clearance_loader::csv_source::CsvSource::new(Cursor::new(data));
    let mut seen = Vec::new();
    match source.scan(&mut |position, record| seen.push((position, record))) {
        Ok(()) => {
            for (position, record) in seen {
                match source.fetch(position) {
                    Ok(again) => assert_eq!(again, record),
                    Err(err) => panic!("record at {position} did not read back: {}", err.message),
                }
            }
        }
        Err(err) => {
            let lines = data.iter().filter(|b| **b == b'\n').count() as u64 + 1;
            assert!(err.line <= lines, "line {} of a {lines}-line file: {}", err.line, err.message);
        }
    }
}

/// Step Functions Task payloads of the batch function: parsed or refused,
/// and a caught error's Cause (a Lambda error's JSON, or anything) becomes
/// a job failure without panicking.
pub fn step_payload(data: &[u8]) {
    if let Ok(clearance_workflow::task::TaskInput::Compensate { error, .. }) =
        serde_json::from_slice::<clearance_workflow::task::TaskInput>(data)
    {
        let failure = error.failure();
        assert!(!failure.code.is_empty());
    }
}

/// Job chunks read back from DynamoDB: corrupt or oversized frames are
/// refused without inflating them; an accepted chunk re-encodes to the same
/// rows.
pub fn stored_chunk(data: &[u8]) {
    if let Ok(rows) = decode_chunk(data) {
        match encode_chunk(&rows).map(|bytes| decode_chunk(&bytes)) {
            Ok(Ok(again)) => assert_eq!(again, rows),
            other => panic!("an accepted chunk did not round-trip: {other:?}"),
        }
    }
    let _ = clearance_core::pages::decode_rows(data);
}
