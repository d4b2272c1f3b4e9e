//! PostgreSQL over TLS: the local server has `ssl = on`, as Aurora does.
//! With `sslmode=require` every connection of both roles is encrypted and a
//! search and a clearance go through; with `verify-full` against a CA that
//! did not sign the server's certificate, the connection is refused with an
//! error that says TLS.

use std::str::FromStr;

use clearance_core::write::WriteConfig;
use clearance_local::{LocalStack, Pools};
use clearance_tests::write_api::{clear, search, Stack};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const FILTER: &str = r#"{"treaty_ids": ["TR-0001"], "period_from": "2024-01", "period_to": "2024-12"}"#;
/// Public roots: none of them signed the local server's certificate.
const WRONG_CA: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The URL of the stack's database as `role`, with `params`.
fn url(stack: &Stack, role: &str, params: &str) -> String {
    let options = stack.db.owner.connect_options();
    format!(
        "postgres://{role}@{}:{}/{}?{params}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or_default()
    )
}

async fn pool(url: &str) -> anyhow::Result<sqlx::PgPool> {
    clearance_pg::connect(url, clearance_pg::PoolLimits { connections_max: 4, ..Default::default() }).await
}

#[tokio::test]
async fn a_search_and_a_clearance_run_over_tls_with_sslmode_require() -> anyhow::Result<()> {
    let stack = Stack::new(5_000).await?;
    let pools = Pools {
        reader: pool(&url(&stack, clearance_pg::READER_ROLE, "sslmode=require")).await?,
        app: pool(&url(&stack, clearance_pg::APP_ROLE, "sslmode=require")).await?,
    };
    for p in [&pools.reader, &pools.app] {
        let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(p)
            .await?;
        assert!(ssl, "the connection is not encrypted");
    }
    assert!(clearance_pg::require_tls(&url(&stack, "clearance_app", "sslmode=require")).is_ok());
    let apis = LocalStack::new(
        pools.clone(),
        &stack.table.client,
        &stack.events,
        &stack.config(WriteConfig::default()),
    );
    let snapshot = search(&apis, "op-tls", FILTER).await?;
    let row = snapshot
        .rows
        .iter()
        .find(|r| r.amount > rust_decimal::Decimal::ZERO)
        .ok_or_else(|| anyhow::anyhow!("no positive row to clear"))?;
    let reply = clear(&apis, "op-tls", &snapshot, &[row], "tls-clear-1").await;
    assert_eq!(reply.status, 201, "{}", reply.json);
    assert_eq!(stack.ledger_counts().await?[0], 1);
    pools.reader.close().await;
    pools.app.close().await;
    stack.drop().await
}

#[tokio::test]
async fn verify_full_with_a_ca_that_did_not_sign_the_server_is_refused_naming_tls() -> anyhow::Result<()> {
    let stack = Stack::new(100).await?;
    let url = url(&stack, clearance_pg::READER_ROLE, &format!("sslmode=verify-full&sslrootcert={WRONG_CA}"));
    let err = match pool(&url).await {
        Ok(_) => anyhow::bail!("a server certificate no CA in the bundle signed was accepted"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("TLS"), "the error does not say TLS: {err}");
    // Without TLS at all, a Lambda function refuses to start.
    let plain = url.split('?').next().unwrap_or_default().to_owned();
    let refused = clearance_pg::require_tls(&plain).map_err(|e| e.to_string());
    assert!(refused.as_ref().is_err_and(|e| e.contains("sslmode")), "{refused:?}");
    let prefer = clearance_pg::require_tls(&format!("{plain}?sslmode=prefer"));
    assert!(prefer.is_err());
    // A CA bundle that is not there is caught before any connection.
    let missing = format!("{plain}?sslmode=verify-full&sslrootcert=/nonexistent/rds-ca.pem");
    let lazy = clearance_pg::connect_lazy(&missing, clearance_pg::PoolLimits::default()).map(|_| ());
    assert!(lazy.is_err_and(|e| e.to_string().contains("sslrootcert")));
    stack.drop().await
}

#[test]
fn the_url_decides_the_tls_mode() -> anyhow::Result<()> {
    use sqlx::postgres::PgSslMode;
    let mode =
        |q: &str| PgConnectOptions::from_str(&format!("postgres://a@h/d?{q}")).map(|o| o.get_ssl_mode());
    assert!(matches!(mode("sslmode=require")?, PgSslMode::Require));
    assert!(matches!(mode("sslmode=verify-full&sslrootcert=/x")?, PgSslMode::VerifyFull));
    let _ = PgPoolOptions::new();
    Ok(())
}
