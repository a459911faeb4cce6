//! Test fixtures shared by the integration tests: a fresh, migrated database per test on
//! each backend. SQLite uses a new file in a temporary directory that lives until the test
//! process ends. PostgreSQL comes from the throwaway cluster that `scripts/test.sh` starts
//! (its admin URL is in `PARADE_TEST_DATABASE_URL`, with a migrated `parade_template`
//! database); each test clones the template, so tests are isolated and run in parallel.
#![allow(dead_code, unused_macros)]

pub mod process;

use std::sync::Arc;

use anyhow::Context;
use parade_host::queue::{Parade, PgParade, SqliteParade};
use sqlx::{Connection, PgConnection};

/// A storage backend under test.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    /// A queue on a fresh, empty, migrated store.
    pub async fn open(self) -> anyhow::Result<Arc<dyn Parade>> {
        match self {
            Backend::Postgres => Ok(Arc::new(
                PgParade::connect(&fresh_pg_database().await?).await?,
            )),
            Backend::Sqlite => {
                let url = format!("sqlite://{}", fresh_sqlite_path().display());
                Ok(Arc::new(SqliteParade::open(&url).await?))
            }
        }
    }
}

impl Backend {
    /// The URL of a fresh, empty, migrated store, for a `parade` process to open.
    pub async fn fresh_url(self) -> anyhow::Result<String> {
        match self {
            Backend::Postgres => fresh_pg_database().await,
            Backend::Sqlite => Ok(format!("sqlite://{}", fresh_sqlite_path().display())),
        }
    }
}

/// The admin URL of the test cluster.
pub fn pg_admin_url() -> anyhow::Result<String> {
    std::env::var("PARADE_TEST_DATABASE_URL").context(
        "PARADE_TEST_DATABASE_URL is not set: run the tests through scripts/test.sh, \
         which starts a throwaway PostgreSQL cluster",
    )
}

/// `admin` with its database name replaced by `name`.
pub fn pg_url_for(admin: &str, name: &str) -> String {
    admin.replacen("/postgres?", &format!("/{name}?"), 1)
}

/// Creates a new database (a copy of the migrated template unless `migrated` is false) and
/// returns its URL.
pub async fn new_pg_database(migrated: bool) -> anyhow::Result<String> {
    let admin = pg_admin_url()?;
    let name = format!("test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&admin)
        .await
        .with_context(|| format!("connecting to the test cluster at {admin}"))?;
    let template = if migrated {
        "parade_template"
    } else {
        "template0"
    };
    sqlx::query(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
        .execute(&mut conn)
        .await
        .context("creating a test database")?;
    Ok(pg_url_for(&admin, &name))
}

/// A fresh migrated PostgreSQL database's URL.
pub async fn fresh_pg_database() -> anyhow::Result<String> {
    new_pg_database(true).await
}

/// A path for a new SQLite file, in a directory removed when the test process ends.
pub fn fresh_sqlite_path() -> std::path::PathBuf {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("creating a temporary directory"));
    dir.path()
        .join(format!("{}.db", uuid::Uuid::new_v4().simple()))
}

/// Instantiates each `async fn name(Backend) -> anyhow::Result<()>` of the invoking test
/// crate's root as one test per backend, in modules `postgres` and `sqlite`.
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() -> anyhow::Result<()> {
                    super::$test(super::support::Backend::Postgres).await
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() -> anyhow::Result<()> {
                    super::$test(super::support::Backend::Sqlite).await
                }
            )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_backends;
