//! A browser on another origin against the local server, over a real
//! loopback connection: preflights of allowed origins get 204 and the
//! `Access-Control-*` headers, refused origins the same status and none of
//! them, and answers to an allowed origin name it (never `*`).

use std::sync::Arc;

use clearance_core::write::WriteConfig;
use clearance_http::cors;
use clearance_tests::write_api::Stack;
use reqwest::header::HeaderMap;

const ALLOWED: &str = "http://localhost:5173";
const REFUSED: &str = "https://evil.example";
const FILTER: &str = r#"{"treaty_ids": ["TR-0001"], "period_from": "2024-01", "period_to": "2024-12"}"#;

fn access_control(headers: &HeaderMap) -> Vec<String> {
    headers.keys().map(|k| k.as_str().to_owned()).filter(|k| k.starts_with("access-control-")).collect()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

#[tokio::test]
async fn browsers_on_allowed_origins_get_cors_and_others_get_nothing() -> anyhow::Result<()> {
    let stack = Stack::new(1_000).await?;
    let app = Arc::new(stack.apis(WriteConfig::default()).await?);
    let origins = cors::parse_origins(cors::LOCAL_ORIGINS_DEFAULT).map_err(anyhow::Error::msg)?;
    let router = clearance_local::server::router(app, &origins);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let client = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        client
            .request(reqwest::Method::OPTIONS, format!("{base}/v1/searches"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,idempotency-key,x-dev-operator")
            .send()
    };

    let allowed = preflight(ALLOWED).await?;
    assert_eq!(allowed.status().as_u16(), 204);
    let h = allowed.headers();
    assert_eq!(header(h, "access-control-allow-origin"), ALLOWED);
    assert!(header(h, "access-control-allow-methods").contains("POST"));
    for name in ["idempotency-key", "if-none-match", "x-dev-operator", "x-dev-treaties", "authorization"] {
        assert!(header(h, "access-control-allow-headers").contains(name), "{name}: {h:?}");
    }
    assert_eq!(header(h, "access-control-max-age"), cors::MAX_AGE_SECS.to_string());

    let refused = preflight(REFUSED).await?;
    assert_eq!(refused.status().as_u16(), 204, "the same status as an allowed origin");
    assert_eq!(access_control(refused.headers()), Vec::<String>::new());

    let search = |origin: &'static str| {
        client
            .post(format!("{base}/v1/searches"))
            .header("origin", origin)
            .header("content-type", "application/json")
            .header("x-dev-operator", "op-browser")
            .header("x-dev-treaties", "*")
            .body(FILTER)
            .send()
    };
    let answer = search(ALLOWED).await?;
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(header(answer.headers(), "access-control-allow-origin"), ALLOWED);
    let exposed = header(answer.headers(), "access-control-expose-headers").to_owned();
    for name in cors::EXPOSE_HEADERS {
        assert!(exposed.contains(name), "{name} not exposed: {exposed}");
    }
    let answer = search(REFUSED).await?;
    assert_eq!(answer.status().as_u16(), 200, "CORS is the browser's rule, not an access check");
    assert_eq!(access_control(answer.headers()), Vec::<String>::new());

    server.abort();
    stack.drop().await
}
