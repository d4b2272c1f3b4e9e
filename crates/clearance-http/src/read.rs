//! The read API: `POST /v1/searches`, `GET /v1/searches/{id}/pages/{n}`
//! and `POST /v1/searches/{id}/suggestions`: the snapshot's answers.

use bytes::Bytes;
use clearance_core::ports::{LedgerReader, ScopeMirror, SnapshotStore};
use clearance_core::read::ReadService;
use clearance_core::snapshot::SnapshotId;
use http::{Method, Response, StatusCode};

use crate::metrics::{self, Unit};
use crate::{
    identity, json_response, method_not_allowed, parse_page_number, parse_search, parse_suggestions,
    parse_view, route_not_found, wire, Api, ApiError, ApiRequest,
};

/// The read API: searches and pages.
pub struct ReadApi<L, S, M> {
    service: ReadService<L, S, M>,
}

impl<L: LedgerReader, S: SnapshotStore, M: ScopeMirror> ReadApi<L, S, M> {
    pub fn new(service: ReadService<L, S, M>) -> Self {
        Self { service }
    }

    /// Whether this API serves the route (the local server asks each API).
    pub fn serves(path: &str) -> bool {
        crate::serves_read(path)
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
            (&Method::POST, ["v1", "searches"]) => {
                let who = identity(request.identity)?;
                let filter = parse_search(request.body)?;
                let outcome = self.service.search(&who, &filter, request.now_secs).await?;
                let t = &outcome.timings;
                let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
                let hit = f64::from(u8::from(outcome.cache == clearance_core::read::CacheState::Hit));
                tracing::info!(
                    operator = who.operator.as_str(),
                    snapshot_id = outcome.meta.id.as_str(),
                    cache = outcome.cache.as_str(),
                    rows = outcome.meta.row_count,
                    "search"
                );
                metrics::emit(&[
                    ("SearchSqlMs", ms(t.sql), Unit::Milliseconds),
                    ("SearchEncodeMs", ms(t.encode), Unit::Milliseconds),
                    ("SearchStoreMs", ms(t.store), Unit::Milliseconds),
                    ("CacheHit", hit, Unit::Count),
                    ("CacheMiss", 1.0 - hit, Unit::Count),
                ]);
                Ok(json_response(StatusCode::OK, wire::search_body(&outcome)))
            }
            (&Method::GET, ["v1", "searches", id, "pages", number]) => {
                let who = identity(request.identity)?;
                let id = SnapshotId::parse(id).map_err(|e| ApiError::from(e).with_field("id"))?;
                let number = parse_page_number(number)?;
                let view = parse_view(request.query)?;
                let page = self.service.page(&who, &id, number, &view, request.now_secs).await?;
                let etag = wire::page_etag(&page, &view);
                if crate::etag_matches(request.headers, &etag) {
                    return Ok(crate::not_modified(&etag));
                }
                Ok(crate::cacheable(json_response(StatusCode::OK, wire::page_body(&page)), &etag))
            }
            (&Method::POST, ["v1", "searches", id, "suggestions"]) => self.suggestions(&request, id).await,
            (_, ["v1", "searches"]) => Err(method_not_allowed("POST")),
            (_, ["v1", "searches", _, "suggestions"]) => Err(method_not_allowed("POST")),
            (_, ["v1", "searches", _, "pages", _]) => Err(method_not_allowed("GET")),
            _ => Err(route_not_found()),
        }
    }
}

impl<L: LedgerReader, S: SnapshotStore, M: ScopeMirror> ReadApi<L, S, M> {
    /// `POST /v1/searches/{id}/suggestions`: the snapshot only, nothing
    /// written, no key.
    async fn suggestions(&self, request: &ApiRequest<'_>, id: &str) -> Result<Response<Bytes>, ApiError> {
        let who = identity(request.identity.clone())?;
        let id = SnapshotId::parse(id).map_err(|e| ApiError::from(e).with_field("id"))?;
        let suggest = parse_suggestions(request.body)?;
        let (meta, out) =
            self.service.suggestions(&who, &id, &suggest, request.now_secs).await.map_err(|e| {
                let error = ApiError::from(e);
                if error.code == "snapshot_not_found" {
                    error.with_field("id")
                } else {
                    error
                }
            })?;
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        tracing::info!(
            operator = who.operator.as_str(),
            snapshot_id = meta.id.as_str(),
            candidates = out.candidates,
            suggestions = out.suggestions.len(),
            exact_sum_ms = ms(out.timings.exact_sum),
            "suggestions"
        );
        Ok(json_response(StatusCode::OK, wire::suggestions_body(&meta, &suggest, &out)))
    }
}

impl<L: LedgerReader, S: SnapshotStore, M: ScopeMirror> Api for ReadApi<L, S, M> {
    fn serves(&self, path: &str) -> bool {
        Self::serves(path)
    }

    async fn handle(&self, request: ApiRequest<'_>) -> Response<Bytes> {
        self.handle_request(request).await
    }
}
