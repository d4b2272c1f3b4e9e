//! Test support: a fresh PostgreSQL database per test, cloned from a
//! template that holds the real migrations, with a pool for the schema owner,
//! one for the application role and one for the read-only role. No mock anywhere: the server is the one
//! `make up` brought up (DATABASE_URL from `.dev/env`).

use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

/// Prefix of every database the tests create; `make test` drops leftovers.
pub const TEST_DB_PREFIX: &str = "clearance_test_";

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/clearance";

fn server_options() -> anyhow::Result<PgConnectOptions> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    PgConnectOptions::from_str(&url).context("DATABASE_URL")
}

/// A name for the template that changes whenever a migration changes.
fn template_name() -> String {
    // FNV-1a over every migration's version and checksum.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for migration in clearance_pg::MIGRATOR.iter() {
        for byte in migration.version.to_le_bytes().iter().chain(migration.checksum.iter()) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("clearance_tpl_{hash:016x}")
}

async fn maintenance() -> anyhow::Result<PgConnection> {
    PgConnection::connect_with(&server_options()?.database("postgres"))
        .await
        .context("connecting to PostgreSQL")
}

async fn ensure_template(conn: &mut PgConnection, template: &str) -> anyhow::Result<()> {
    // Test binaries run in parallel processes: one builds the template, the
    // others wait on the same advisory lock and then find it.
    sqlx::query("SELECT pg_advisory_lock(hashtext('clearance.test_template'))").execute(&mut *conn).await?;
    let result = async {
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(template)
            .fetch_one(&mut *conn)
            .await?;
        if exists {
            return Ok(());
        }
        let building = format!("{template}_building");
        sqlx::query(&format!(r#"DROP DATABASE IF EXISTS "{building}" WITH (FORCE)"#))
            .execute(&mut *conn)
            .await?;
        sqlx::query(&format!(r#"CREATE DATABASE "{building}""#)).execute(&mut *conn).await?;
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(server_options()?.database(&building))
            .await?;
        clearance_pg::migrate(&pool).await?;
        pool.close().await;
        sqlx::query(&format!(r#"ALTER DATABASE "{building}" RENAME TO "{template}""#))
            .execute(&mut *conn)
            .await?;
        anyhow::Ok(())
    }
    .await;
    sqlx::query("SELECT pg_advisory_unlock(hashtext('clearance.test_template'))").execute(&mut *conn).await?;
    result
}

/// A database of its own for one test.
pub struct TestDb {
    pub name: String,
    /// The schema owner (what the loader connects as).
    pub owner: PgPool,
    /// The application role the write and batch paths connect as.
    pub app: PgPool,
    /// The read-only role the read path connects as.
    pub reader: PgPool,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    /// # Errors
    /// When PostgreSQL is not reachable or the template cannot be built.
    pub async fn new() -> anyhow::Result<Self> {
        let template = template_name();
        let mut conn = maintenance().await?;
        ensure_template(&mut conn, &template).await?;
        let name = format!(
            "{TEST_DB_PREFIX}{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            uuid::Uuid::new_v4().simple()
        );
        sqlx::query(&format!(r#"CREATE DATABASE "{name}" TEMPLATE "{template}""#))
            .execute(&mut conn)
            .await
            .with_context(|| format!("creating {name} from {template}"))?;
        conn.close().await?;
        let options = clearance_pg::session_options(
            server_options()?.database(&name),
            clearance_pg::PoolLimits::default(),
        );
        let owner = PgPoolOptions::new().max_connections(4).connect_with(options.clone()).await?;
        let app = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(options.clone().username(clearance_pg::APP_ROLE))
            .await
            .context("connecting as the application role")?;
        let reader = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(options.username(clearance_pg::READER_ROLE))
            .await
            .context("connecting as the reader role")?;
        Ok(Self { name, owner, app, reader })
    }

    /// Drops the database. Tests call it at the end; a failed test leaves
    /// its database behind for inspection until the next `make test`.
    ///
    /// # Errors
    /// When the drop fails.
    pub async fn drop_db(self) -> anyhow::Result<()> {
        self.owner.close().await;
        self.app.close().await;
        self.reader.close().await;
        let mut conn = maintenance().await?;
        sqlx::query(&format!(r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#, self.name))
            .execute(&mut conn)
            .await?;
        Ok(())
    }

    /// Rows in `transactions`.
    ///
    /// # Errors
    /// When the query fails.
    pub async fn transaction_count(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM transactions").fetch_one(&self.owner).await?)
    }

    /// Every treaty's scope version, by treaty id.
    ///
    /// # Errors
    /// When the query fails.
    pub async fn scope_versions(&self) -> anyhow::Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as("SELECT treaty_id, version FROM scope_versions ORDER BY treaty_id")
            .fetch_all(&self.owner)
            .await?)
    }
}

/// The SQLSTATE of a failed query, if PostgreSQL answered with one.
pub fn sqlstate(err: &sqlx::Error) -> Option<String> {
    err.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned())
}

pub mod aws_fixtures;
pub mod dynamo;
pub mod events;
pub mod private_moto;
pub mod read_api;
pub mod write_api;
