//! Test fixtures shared by the integration tests: a fresh, migrated database per test on
//! each backend. SQLite uses a new file in a temporary directory that lives until the test
//! process ends. PostgreSQL comes from the throwaway cluster that `scripts/test.sh` starts
//! (its admin URL is in `PARADE_TEST_DATABASE_URL`, with a migrated `parade_template`
//! database); each test clones the template, so tests are isolated and run in parallel.
#![allow(dead_code, unused_macros)]

pub mod own_plan;
pub mod process;

use std::sync::Arc;

use anyhow::Context;
use parade_host::queue::{Parade, PgParade, Prefixed, SqliteParade, TaskFilter, TaskPage};
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

/// Asserts that `e` rendered as `{:#}` (each cause after a `: `) says each thing once: no
/// cause repeats the text of one before it.
pub fn assert_says_each_thing_once(e: anyhow::Error) {
    let segments: Vec<String> = e.chain().map(ToString::to_string).collect();
    for (i, later) in segments.iter().enumerate().skip(1) {
        for earlier in &segments[..i] {
            assert!(
                !earlier.contains(later.as_str()),
                "{later:?} repeats what {earlier:?} said: {e:#}"
            );
        }
    }
}

/// A store under test for the conformance suite: a backend, used bare (as `parade run` uses
/// it by default) or namespaced by [`Prefixed`] (as with `[actor] prefix`).
#[derive(Debug, Clone, Copy)]
pub struct Store {
    pub backend: Backend,
    pub prefixed: bool,
}

impl Store {
    pub const fn bare(backend: Backend) -> Store {
        Store {
            backend,
            prefixed: false,
        }
    }

    pub const fn prefixed(backend: Backend) -> Store {
        Store {
            backend,
            prefixed: true,
        }
    }

    /// A queue on a fresh store: the backend itself, or its namespace `test` (as the
    /// upstream tests used).
    pub async fn open(self) -> anyhow::Result<Arc<dyn Parade>> {
        let base = self.backend.open().await?;
        Ok(if self.prefixed {
            Arc::new(Prefixed::new(base, "test"))
        } else {
            base
        })
    }
}

/// The one mechanism that turns scenarios into tests: module `$module` gets one test per
/// listed `async fn(fixture) -> anyhow::Result<()>` found at the test crate's root, each
/// called with that module's fixture. Every list after the fixture is instantiated in the
/// module, so a set shared by several modules and a set for some are each written once:
///
/// ```ignore
/// instantiate!(sqlite_bare (Store::bare(Backend::Sqlite)) [owning_works, returning_works]);
/// ```
macro_rules! instantiate {
    ($module:ident ($fixture:expr) $([$($test:ident),* $(,)?])*) => {
        mod $module {
            $($(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() -> anyhow::Result<()> {
                    crate::$test($fixture).await
                }
            )*)*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use instantiate;

/// Instantiates each `async fn name(Backend) -> anyhow::Result<()>` of the invoking test
/// crate's root as one test per backend, in modules `postgres` and `sqlite`.
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        crate::support::instantiate!(postgres (crate::support::Backend::Postgres) [$($test),*]);
        crate::support::instantiate!(sqlite (crate::support::Backend::Sqlite) [$($test),*]);
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_backends;

/// Every page of `filter` (its limit the page size), followed by cursor to the end.
pub async fn all_pages(q: &impl Parade, filter: &TaskFilter) -> anyhow::Result<Vec<TaskPage>> {
    let mut pages = Vec::new();
    let mut filter = filter.clone();
    loop {
        let page = q.list_task_page(&filter).await?;
        let next = page.next;
        anyhow::ensure!(pages.len() < 100_000, "paging does not end");
        pages.push(page);
        match next {
            Some(cursor) => filter.after = Some(cursor),
            None => return Ok(pages),
        }
    }
}

/// The ids of `pages`' tasks, in order.
pub fn ids_of(pages: &[TaskPage]) -> Vec<String> {
    pages
        .iter()
        .flat_map(|p| p.tasks.iter().map(|t| t.task.id.0.clone()))
        .collect()
}
