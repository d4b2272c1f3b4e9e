//! The HTTP edge, shared by the Lambda functions and the local server: one
//! router, the wire types, and the one mapping from domain errors to status
//! codes and bodies. Callers supply the identity (JWT claims in Lambda, dev
//! headers in the local server only) and the clock.

pub mod config;
pub mod cors;
pub mod encoding;
pub mod errors;
mod jobs;
pub mod metrics;
mod read;
pub mod wire;
mod write;

pub use jobs::JobsApi;
pub use read::ReadApi;
pub use write::{
    parse_clearance, parse_reversal, parse_selection_summary, WriteApi, CLEARANCE_BODY_BYTES_MAX,
};

use bytes::Bytes;
use clearance_core::access::Identity;
use clearance_core::read::ReadError;
use clearance_core::snapshot::{InputError, SearchFilter};
use clearance_core::suggest::SuggestRequest;
use clearance_core::views::{ViewFilter, ViewFilterInput, ViewSpec, FILTER_PARAMS, VIEW_PARAM_LEN_MAX};
use http::{HeaderMap, Method, Response, StatusCode};

/// Every route the APIs serve, as (method, path template): the OpenAPI
/// document lists exactly these (a test compares them).
pub const ROUTES: [(&str, &str); 10] = [
    ("POST", "/v1/searches"),
    ("GET", "/v1/searches/{id}/pages/{n}"),
    ("POST", "/v1/searches/{id}/selection-summary"),
    ("POST", "/v1/searches/{id}/suggestions"),
    ("POST", "/v1/clearances"),
    ("GET", "/v1/clearances/{id}"),
    ("POST", "/v1/clearances/{id}/reversal"),
    ("GET", "/v1/jobs/{id}"),
    ("POST", "/v1/treaties/{treaty_id}/periods/{period}/close"),
    ("POST", "/v1/treaties/{treaty_id}/periods/{period}/reopen"),
];

/// The API version segment every route starts with.
const VERSION_SEGMENT: &str = "/v1";

/// Splits a request path as API Gateway delivers it into the prefix the
/// client called through and the route: on a named stage the path carries
/// the stage (`/dev/v1/searches`, `stage` = `dev`), behind a custom domain
/// a base path mapping (`/clearance/v1/searches`), on `$default` nothing.
/// The route is everything from the first `/v1` segment after the stage;
/// a path without one is returned whole (and answered 404).
pub fn split_route<'a>(path: &'a str, stage: Option<&str>) -> (&'a str, &'a str) {
    let rest = match stage.filter(|s| !s.is_empty() && *s != "$default") {
        Some(stage) => match path.strip_prefix('/').and_then(|p| p.strip_prefix(stage)) {
            Some(after) if after.is_empty() || after.starts_with('/') => after,
            _ => path,
        },
        None => path,
    };
    let route = rest
        .match_indices(VERSION_SEGMENT)
        .map(|(i, _)| &rest[i..])
        .find(|r| r.len() == VERSION_SEGMENT.len() || r.as_bytes()[VERSION_SEGMENT.len()] == b'/');
    match route {
        Some(route) => (&path[..path.len() - route.len()], route),
        None => ("", path),
    }
}

/// Seconds a client waits before retrying a 503 (`Retry-After`).
pub const RETRY_AFTER_SECS: u32 = 1;

/// Largest request body accepted on any route.
pub const BODY_BYTES_MAX: usize = 64 * 1024;
/// Longest query string accepted.
const QUERY_BYTES_MAX: usize = 8 * 1024;
/// Most digits of a page number.
const PAGE_DIGITS_MAX: usize = 6;

/// An error answer: status, stable code, what to do, and the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// More members of the body (the moved ids of a stale selection, ...).
    pub details: Vec<(&'static str, serde_json::Value)>,
    /// The methods of the route, for a 405's `Allow` header.
    pub allow: Option<&'static str>,
}

impl ApiError {
    /// An error answered with `code`'s status from [`errors::status_of`].
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        let status = errors::status_of(code);
        Self { status, code, message: message.into(), field: None, details: Vec::new(), allow: None }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn with_detail(mut self, name: &'static str, value: impl Into<serde_json::Value>) -> Self {
        self.details.push((name, value.into()));
        self
    }

    pub fn into_response(self) -> Response<Bytes> {
        let mut body = serde_json::json!({ "error": self.code, "message": self.message });
        if let Some(field) = self.field {
            body["field"] = serde_json::Value::String(field);
        }
        for (name, value) in self.details {
            body[name] = value;
        }
        let mut response = json_response(self.status, body.to_string().into_bytes());
        if let Some(allow) = self.allow {
            response.headers_mut().insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}

impl From<InputError> for ApiError {
    fn from(err: InputError) -> Self {
        Self { field: Some(err.field), ..Self::new(err.code, err.message) }
    }
}

impl From<ReadError> for ApiError {
    fn from(err: ReadError) -> Self {
        match err {
            ReadError::NotEntitled(treaty) => ApiError::new(
                "not_entitled",
                format!("you are not entitled to treaty {treaty} (or it does not exist)"),
            )
            .with_field("/treaty_ids"),
            ReadError::SnapshotNotFound => ApiError::new(
                "snapshot_not_found",
                "no such snapshot for you, or it expired: run the search again",
            )
            .with_field("id"),
            ReadError::PageOutOfRange { number, page_count } => ApiError::new(
                "page_out_of_range",
                format!("page {number} does not exist: pages are 0 to {}", page_count.saturating_sub(1)),
            )
            .with_field("n"),
            ReadError::Backend(e) => {
                tracing::error!(error = %e, "backend unavailable");
                ApiError::new("backend_unavailable", "a backend is unavailable: retry shortly")
            }
            ReadError::Chunk(e) => {
                tracing::error!(error = %e, "snapshot chunk error");
                ApiError::new("internal_error", "the snapshot could not be read: run the search again")
            }
        }
    }
}

pub(crate) fn json_response(status: StatusCode, body: Vec<u8>) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

/// Whether `If-None-Match` in `headers` names `etag` (or `*`); weak tags
/// compare by their opaque part, as RFC 9110 says for this header.
pub(crate) fn etag_matches(headers: &http::HeaderMap, etag: &str) -> bool {
    headers.get_all(http::header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).any(|list| {
        list.split(',').map(str::trim).any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
    })
}

/// A cacheable answer: its `ETag`, and `Cache-Control: private, no-cache`
/// (a browser may keep it, and asks again every time).
pub(crate) fn cacheable(mut response: Response<Bytes>, etag: &str) -> Response<Bytes> {
    if let Ok(value) = http::HeaderValue::from_str(etag) {
        response.headers_mut().insert(http::header::ETAG, value);
    }
    response
        .headers_mut()
        .insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("private, no-cache"));
    response
}

/// 304 for a matching `If-None-Match`: the tag again, no body.
pub(crate) fn not_modified(etag: &str) -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    cacheable(response, etag)
}

/// An API the Lambda runtime or the local server can serve.
pub trait Api: Send + Sync {
    /// Whether this API serves the path.
    fn serves(&self, path: &str) -> bool;

    fn handle(&self, request: ApiRequest<'_>) -> impl std::future::Future<Output = Response<Bytes>> + Send;
}

/// One request as the router sees it.
pub struct ApiRequest<'a> {
    pub method: &'a Method,
    /// What the client called before `/v1` (the stage or a base path; empty
    /// on `$default` and locally): URLs the API hands out start with it.
    pub base: &'a str,
    /// The route: the path from `/v1`.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub body: &'a [u8],
    pub headers: &'a HeaderMap,
    /// `None` when the caller could not establish an identity.
    pub identity: Option<Result<Identity, InputError>>,
    pub now_secs: i64,
}

pub(crate) fn identity(identity: Option<Result<Identity, InputError>>) -> Result<Identity, ApiError> {
    match identity {
        None => Err(ApiError::new("unauthenticated", "sign in: the request carries no identity")),
        Some(Err(e)) => Err(ApiError::from(e)),
        Some(Ok(who)) => Ok(who),
    }
}

/// 413 `body_too_large` when `body` is over `max` bytes.
///
/// # Errors
/// As said.
pub fn check_body_size(body: &[u8], max: usize) -> Result<(), ApiError> {
    if body.len() > max {
        return Err(ApiError::new("body_too_large", format!("the body is over {max} bytes")));
    }
    Ok(())
}

/// 405 for a known route asked with another method.
pub(crate) fn method_not_allowed(allow: &'static str) -> ApiError {
    ApiError {
        allow: Some(allow),
        ..ApiError::new(
            "method_not_allowed",
            format!("this route takes {allow} (and OPTIONS from a browser)"),
        )
    }
}

pub(crate) fn route_not_found() -> ApiError {
    ApiError::new("route_not_found", "no such route")
}

/// Whether `path` is a selection summary's: served by the write function,
/// which knows the clearance limits, though it sits under `/v1/searches/`.
fn is_selection_summary(path: &str) -> bool {
    path.starts_with("/v1/searches/") && path.trim_end_matches('/').ends_with("/selection-summary")
}

/// Whether the read function serves `path` (searches and pages).
pub fn serves_read(path: &str) -> bool {
    path == "/v1/searches" || (path.starts_with("/v1/searches/") && !is_selection_summary(path))
}

/// Whether the write function serves `path` (clearances, reversals, the
/// selection summary).
pub fn serves_write(path: &str) -> bool {
    path == "/v1/clearances"
        || path.starts_with("/v1/clearances/")
        || is_selection_summary(path)
        || path.starts_with("/v1/treaties/")
}

/// Whether the job-status function serves `path`.
pub fn serves_jobs(path: &str) -> bool {
    path == "/v1/jobs" || path.starts_with("/v1/jobs/")
}

/// Parses and validates a search body. No IO happens before this succeeds.
///
/// # Errors
/// [`ApiError`] 400/413 with a stable code and the field.
pub fn parse_search(body: &[u8]) -> Result<SearchFilter, ApiError> {
    check_body_size(body, BODY_BYTES_MAX)?;
    let request: wire::SearchRequest = wire::parse_json(body)?;
    Ok(SearchFilter::parse(&request.into())?)
}

/// Largest suggestion body: 10,000 remittance lines as JSON or CSV.
pub const SUGGEST_BODY_BYTES_MAX: usize = 2 * 1024 * 1024;

/// Parses and validates a suggestion body. No IO happens before this
/// succeeds.
///
/// # Errors
/// [`ApiError`] 400/413 with a stable code and the field.
pub fn parse_suggestions(body: &[u8]) -> Result<SuggestRequest, ApiError> {
    check_body_size(body, SUGGEST_BODY_BYTES_MAX)?;
    let request: wire::SuggestRequestWire = wire::parse_json(body)?;
    Ok(SuggestRequest::parse(&request.into())?)
}

/// Parses a page number: decimal digits only, at most six.
///
/// # Errors
/// [`ApiError`] 400 `invalid_page_number`.
pub fn parse_page_number(raw: &str) -> Result<u32, ApiError> {
    if raw.is_empty() || raw.len() > PAGE_DIGITS_MAX || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(
            ApiError::new("invalid_page_number", "a page number is 0 or more, in digits").with_field("n")
        );
    }
    raw.parse()
        .map_err(|_| ApiError::new("invalid_page_number", "a page number is 0 or more").with_field("n"))
}

/// Parses the page query: `sort` and the view's filter parameters
/// ([`FILTER_PARAMS`]); anything else is refused rather than ignored.
///
/// # Errors
/// [`ApiError`] 400 naming the parameter.
pub fn parse_view(query: Option<&str>) -> Result<ViewSpec, ApiError> {
    let query = query.unwrap_or("");
    if query.len() > QUERY_BYTES_MAX {
        return Err(ApiError::new("invalid_query", "the query string is too long"));
    }
    let mut values: std::collections::BTreeMap<&str, String> = std::collections::BTreeMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let Some(name) = std::iter::once("sort").chain(FILTER_PARAMS).find(|n| *n == key) else {
            return Err(ApiError::new(
                "unknown_parameter",
                format!("the page query takes sort, {}", FILTER_PARAMS.join(", ")),
            )
            .with_field(key.chars().take(64).collect::<String>()));
        };
        let value = wire::percent_decode(value)
            .ok_or_else(|| ApiError::new("invalid_query", "bad percent-encoding").with_field(name))?;
        if value.len() > VIEW_PARAM_LEN_MAX {
            let message = format!("{name} is longer than {VIEW_PARAM_LEN_MAX} bytes");
            return Err(ApiError::new("invalid_query", message).with_field(name));
        }
        if values.insert(name, value).is_some() {
            return Err(ApiError::new("duplicate_parameter", "give each parameter once").with_field(name));
        }
    }
    let mut take = |name: &str| values.remove(name);
    // An empty list is no cedent filter; otherwise every item is a code.
    let cedent_id = take("cedent_id")
        .filter(|list| !list.is_empty())
        .map(|list| list.split(',').map(str::to_owned).collect());
    let input = ViewFilterInput {
        cedent_id,
        currency: take("currency"),
        amount_min: take("amount_min"),
        amount_max: take("amount_max"),
        reference: take("reference"),
        txn_date_from: take("txn_date_from"),
        txn_date_to: take("txn_date_to"),
        period_from: take("period_from"),
        period_to: take("period_to"),
    };
    let filter = ViewFilter::parse(&input, "")?;
    Ok(ViewSpec::parse(take("sort").as_deref(), filter)?)
}

#[cfg(test)]
mod route_tests {
    use super::split_route;

    #[test]
    fn the_stage_and_a_base_path_are_not_part_of_the_route() {
        assert_eq!(split_route("/v1/searches", Some("$default")), ("", "/v1/searches"));
        assert_eq!(split_route("/v1/searches", None), ("", "/v1/searches"));
        assert_eq!(split_route("/dev/v1/searches", Some("dev")), ("/dev", "/v1/searches"));
        assert_eq!(split_route("/dev/v1/jobs/x", Some("dev")), ("/dev", "/v1/jobs/x"));
        assert_eq!(split_route("/clearance/v1/searches", Some("$default")), ("/clearance", "/v1/searches"));
        assert_eq!(split_route("/a/b/v1/clearances", Some("prod")), ("/a/b", "/v1/clearances"));
        // A stage named like the version is taken off first.
        assert_eq!(split_route("/v1/v1/searches", Some("v1")), ("/v1", "/v1/searches"));
        // A segment that only starts with v1 is not the version.
        assert_eq!(split_route("/v10/v1/searches", Some("$default")), ("/v10", "/v1/searches"));
        assert_eq!(split_route("/nothing/here", Some("dev")), ("", "/nothing/here"));
    }
}

#[cfg(test)]
mod error_tests {
    use super::*;

    #[test]
    fn an_unavailable_backend_says_when_to_retry_and_a_wrong_method_which_to_use() {
        let unavailable = ApiError::new("backend_unavailable", "retry").into_response();
        assert_eq!(
            unavailable.headers().get(http::header::RETRY_AFTER).map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
        let wrong = method_not_allowed("POST").into_response();
        assert_eq!(wrong.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(wrong.headers().get(http::header::ALLOW).map(|v| v.as_bytes()), Some(&b"POST"[..]));
        let bad = ApiError::new("invalid_query", "no").into_response();
        assert!(bad.headers().get(http::header::RETRY_AFTER).is_none());
    }
}
