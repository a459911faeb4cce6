//! Opening a store: the database URLs Parade accepts, the backend each names, and
//! migrating a store's schema. Callers get an `Arc<dyn Parade>` and never branch on which
//! backend they have.

use std::sync::Arc;

use super::{Error, Parade, PgParade, Result, SqliteParade};

/// The store used when none is configured: `parade.db` in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://parade.db";

/// The backend a database URL names.
enum Scheme {
    Postgres,
    Sqlite,
}

fn scheme(url: &str) -> Result<Scheme> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Scheme::Postgres)
    } else if url.starts_with("sqlite:") {
        Ok(Scheme::Sqlite)
    } else {
        Err(Error::BadUrl {
            url: url.to_owned(),
            problem: "expected postgres://…, sqlite://PATH or sqlite::memory:".into(),
        })
    }
}

/// Opens the queue at `url`: `postgres://…` (the schema must be migrated: see [`migrate`]),
/// `sqlite://PATH` (created and migrated on first use) or `sqlite::memory:`.
pub async fn open(url: &str) -> Result<Arc<dyn Parade>> {
    open_with(url, None).await
}

/// [`open`], with at most `max_connections` connections (default: 16 for PostgreSQL, 8
/// for a SQLite file).
pub async fn open_with(url: &str, max_connections: Option<u32>) -> Result<Arc<dyn Parade>> {
    Ok(match scheme(url)? {
        Scheme::Postgres => Arc::new(PgParade::connect_with(url, max_connections).await?),
        Scheme::Sqlite => Arc::new(SqliteParade::open_with(url, max_connections).await?),
    })
}

/// Checks that `url` names a kind of store Parade knows, without connecting.
pub fn check_url(url: &str) -> Result<()> {
    scheme(url).map(drop)
}

/// Creates or upgrades the queue schema of the database at `url`.
pub async fn migrate(url: &str) -> Result<()> {
    match scheme(url)? {
        Scheme::Postgres => PgParade::connect(url).await?.migrate().await,
        Scheme::Sqlite => SqliteParade::open(url).await.map(drop),
    }
}
