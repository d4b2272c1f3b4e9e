//! The local server's HTTP door: every path to the [`LocalStack`] router,
//! the identity from the dev headers (honoured here only), and the browser
//! rules of DESIGN.md (CORS for the origins in `CLEARANCE_CORS_ORIGINS`)
//! through tower-http's CORS layer.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use clearance_core::access::Identity;
use clearance_core::batch::JobStarter;
use clearance_core::snapshot::InputError;
use clearance_http::{cors, Api, ApiError, ApiRequest, CLEARANCE_BODY_BYTES_MAX};
use http::{HeaderName, HeaderValue, Method, StatusCode};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::LocalStack;

/// The largest body any route takes; each route checks its own limit.
const BODY_BYTES_MAX: usize = CLEARANCE_BODY_BYTES_MAX;

fn dev_identity(headers: &http::HeaderMap) -> Option<Result<Identity, InputError>> {
    let operator = headers.get("x-dev-operator")?.to_str().ok()?;
    let treaties = headers.get("x-dev-treaties").and_then(|v| v.to_str().ok()).unwrap_or("");
    let roles = headers.get("x-dev-roles").and_then(|v| v.to_str().ok()).unwrap_or("");
    Some(Identity::parse(operator, treaties).map(|who| who.with_roles(roles)))
}

async fn handle<R: JobStarter + 'static>(
    State(app): State<Arc<LocalStack<R>>>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let response = match axum::body::to_bytes(body, BODY_BYTES_MAX).await {
        Err(_) => ApiError::new("body_too_large", format!("the body is over {BODY_BYTES_MAX} bytes"))
            .into_response(),
        Ok(body) => {
            let now_secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
            let request = ApiRequest {
                method: &parts.method,
                base: "",
                path: parts.uri.path(),
                query: parts.uri.query(),
                body: &body,
                headers: &parts.headers,
                identity: dev_identity(&parts.headers),
                now_secs,
            };
            app.handle(request).await
        }
    };
    clearance_http::encoding::compress(response, &parts.headers).map(Body::from)
}

fn header_names(names: &[&'static str]) -> Vec<HeaderName> {
    names.iter().map(|n| HeaderName::from_static(n)).collect()
}

/// tower-http's CORS layer with DESIGN.md's lists, for exactly `origins`.
fn cors_layer(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    let methods: Vec<Method> = cors::ALLOW_METHODS.iter().filter_map(|m| m.parse().ok()).collect();
    let allow: Vec<&'static str> =
        cors::ALLOW_HEADERS.iter().chain(&cors::DEV_ALLOW_HEADERS).copied().collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods(methods)
        .allow_headers(header_names(&allow))
        .expose_headers(header_names(&cors::EXPOSE_HEADERS))
        .max_age(Duration::from_secs(cors::MAX_AGE_SECS))
}

/// Two rules on top of tower-http's layer: a preflight is answered 204 (no
/// content), and an answer that does not allow the origin carries no
/// `Access-Control-*` header at all (the layer would still list methods and
/// headers to a refused origin).
async fn cors_finish(request: Request, next: Next) -> Response {
    let preflight = request.method() == Method::OPTIONS;
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if !headers.contains_key(http::header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        let names: Vec<HeaderName> =
            headers.keys().filter(|n| n.as_str().starts_with("access-control-")).cloned().collect();
        for name in names {
            headers.remove(name);
        }
    }
    if preflight && response.status() == StatusCode::OK {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response
}

/// `router` serving the reference grid's build (`web/dist`) at `/app/`,
/// same origin as the API. Files are read at request time: a rebuild shows
/// without a restart; before the first build `/app/` is a 404. Unknown paths
/// under `/app/` get the app's `index.html` (its own routes).
pub fn with_app(router: axum::Router, dist: &std::path::Path) -> axum::Router {
    use tower_http::services::{ServeDir, ServeFile};
    let app = ServeDir::new(dist).fallback(ServeFile::new(dist.join("index.html")));
    router
        .route("/app", axum::routing::get(|| async { axum::response::Redirect::permanent("/app/") }))
        .nest_service("/app/", app)
}

/// The local server's router: every path to `app`, CORS for `origins`.
pub fn router<R: JobStarter + 'static>(app: Arc<LocalStack<R>>, origins: &[String]) -> axum::Router {
    axum::Router::new()
        .fallback(handle::<R>)
        .with_state(app)
        .layer(cors_layer(origins))
        .layer(axum::middleware::from_fn(cors_finish))
}
