//! The Lambda entry of the functions. HTTP: the identity comes from the API
//! Gateway JWT authorizer's claims, `sub` (the operator) and `treaties`
//! (entitled treaty ids, or `*`), the route from the path without the stage
//! or base path, and every request goes to one [`Api`]. Every function:
//! the cold start in [`init`].

pub mod init;

pub use init::{configured, database_pool, sdk_config};

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use clearance_core::access::Identity;
use clearance_core::snapshot::InputError;
use clearance_http::{Api, ApiRequest};
use lambda_http::request::RequestContext;
use lambda_http::{service_fn, Body, Error, Request, RequestExt, Response};
use tracing::Instrument;

/// The caller's identity from the authorizer's claims (`sub`, `treaties`,
/// and `roles`, where `closer` may close periods); `None` without them.
pub fn claims_identity(request: &Request) -> Option<Result<Identity, InputError>> {
    let RequestContext::ApiGatewayV2(context) = request.request_context_ref()? else { return None };
    let claims = &context.authorizer.as_ref()?.jwt.as_ref()?.claims;
    let operator = claims.get("sub")?;
    let roles = claims.get("roles").map_or("", String::as_str);
    Some(
        Identity::parse(operator, claims.get("treaties").map_or("", String::as_str))
            .map(|who| who.with_roles(roles)),
    )
}

/// The stage of the request (`$default`, or the named stage the template
/// deploys), when API Gateway says.
fn stage(request: &Request) -> Option<&str> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => context.stage.as_deref(),
        RequestContext::ApiGatewayV1(context) => context.stage.as_deref(),
        _ => None,
    }
}

pub fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// JSON logs to stdout (CloudWatch), filtered by `RUST_LOG`, each line with
/// the fields of its request span (request id, operator).
pub fn init_logs() {
    tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
}

/// Handles one Lambda request with `api`, inside a span carrying the
/// request id and the operator, so every log line of the request has them.
/// One line per request: method, route, status, duration; never a body.
pub async fn handle<A: Api>(api: &A, request: Request) -> Response<Body> {
    let identity = claims_identity(&request);
    let operator = identity.as_ref().and_then(|i| i.as_ref().ok()).map(|i| i.operator.as_str().to_owned());
    let request_id = request.lambda_context_ref().map(|c| c.request_id.clone()).unwrap_or_default();
    let span = tracing::info_span!("request", request_id, operator = operator.as_deref().unwrap_or("-"));
    let started = std::time::Instant::now();
    let (base, route) = clearance_http::split_route(request.uri().path(), stage(&request));
    let response = api
        .handle(ApiRequest {
            method: request.method(),
            base,
            path: route,
            query: request.uri().query(),
            body: request.body().as_ref(),
            headers: request.headers(),
            identity,
            now_secs: now_secs(),
        })
        .instrument(span.clone())
        .await;
    span.in_scope(|| {
        tracing::info!(
            method = %request.method(),
            path = route,
            status = response.status().as_u16(),
            duration_ms = started.elapsed().as_secs_f64() * 1e3,
            "request"
        );
    });
    let response = clearance_http::encoding::compress(response, request.headers());
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, Body::Binary(body.to_vec()))
}

/// Runs the Lambda loop over `api`.
///
/// # Errors
/// When the runtime fails.
pub async fn run<A: Api + 'static>(api: A) -> Result<(), Error> {
    let api = Arc::new(api);
    lambda_http::run(service_fn(move |request: Request| {
        let api = Arc::clone(&api);
        async move { Ok::<_, Error>(handle(api.as_ref(), request).await) }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = include_str!("../../../events/search-apigw-v2.json");

    #[test]
    fn the_operator_and_treaties_come_from_the_jwt_claims() -> Result<(), Box<dyn std::error::Error>> {
        let request = lambda_http::request::from_str(EVENT)?;
        let who = claims_identity(&request).ok_or("no identity")??;
        assert_eq!(who.operator.as_str(), "operator-alice");
        let allowed = |t: &str| clearance_core::TreatyId::parse(t).map(|t| who.entitlement.allows(&t));
        assert_eq!((allowed("TR-0001")?, allowed("TR-0002")?, allowed("TR-0003")?), (true, true, false));
        assert_eq!(request.uri().path(), "/v1/searches");
        Ok(())
    }

    #[test]
    fn the_closer_role_comes_from_the_roles_claim() -> Result<(), Box<dyn std::error::Error>> {
        let with_roles = |roles: Option<&str>| -> Result<bool, Box<dyn std::error::Error>> {
            let mut event: serde_json::Value = serde_json::from_str(EVENT)?;
            let claims = &mut event["requestContext"]["authorizer"]["jwt"]["claims"];
            if let Some(roles) = roles {
                claims["roles"] = roles.into();
            }
            let request = lambda_http::request::from_str(&event.to_string())?;
            Ok(claims_identity(&request).ok_or("no identity")??.is_closer())
        };
        // API Gateway renders a JWT array claim as "[a b]".
        assert_eq!(
            (with_roles(Some("[closer viewer]"))?, with_roles(Some("viewer"))?, with_roles(None)?),
            (true, false, false)
        );
        Ok(())
    }

    #[test]
    fn a_request_without_an_authorizer_has_no_identity() -> Result<(), Box<dyn std::error::Error>> {
        let mut event: serde_json::Value = serde_json::from_str(EVENT)?;
        event["requestContext"]["authorizer"] = serde_json::Value::Null;
        let request = lambda_http::request::from_str(&event.to_string())?;
        assert!(claims_identity(&request).is_none());
        Ok(())
    }
}
