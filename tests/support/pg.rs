//! Fresh PostgreSQL databases for tests: one per test, on the server named by
//! `HOOKD_TEST_DATABASE_URL` (an admin connection; default
//! `postgres://postgres@127.0.0.1:5432/postgres`), dropped when the test ends.
//!
//! When the server cannot be reached, [`TestDatabase::create`] fails the test if `CI` is set
//! (a CI run must never pass by skipping) and otherwise returns `None`, having said on stderr
//! that the PostgreSQL part is skipped.

use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::{Connection, Executor, PgConnection};

pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub fn admin_url() -> String {
    std::env::var("HOOKD_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

/// Whether this is a CI run, where a test that cannot reach PostgreSQL must fail.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

pub struct TestDatabase {
    pub name: String,
    /// The URL hookd connects with.
    pub url: String,
    admin_url: String,
}

impl TestDatabase {
    /// Creates an empty database with a name no other test uses.
    pub async fn create() -> Option<Self> {
        match Self::try_create().await {
            Ok(db) => Some(db),
            Err(e) if in_ci() => panic!(
                "PostgreSQL at {} is needed and CI is set: {e}",
                hookd::config::redact_url(&admin_url())
            ),
            Err(e) => {
                eprintln!(
                    "skipping the PostgreSQL part of this test: cannot reach {} ({e})",
                    hookd::config::redact_url(&admin_url())
                );
                None
            }
        }
    }

    /// As [`TestDatabase::create`], but failing the test when PostgreSQL is unreachable.
    pub async fn require() -> Self {
        match Self::try_create().await {
            Ok(db) => db,
            Err(e) => panic!(
                "PostgreSQL at {} is needed by this test: {e}",
                hookd::config::redact_url(&admin_url())
            ),
        }
    }

    async fn try_create() -> Result<Self, sqlx::Error> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let admin_url = admin_url();
        let name = format!(
            "hookd_test_{}_{}_{:08x}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        let mut admin = PgConnection::connect(&admin_url).await?;
        drop_stale_databases(&mut admin).await;
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await?;
        admin.close().await?;
        let mut url =
            url::Url::parse(&admin_url).map_err(|e| sqlx::Error::Configuration(e.into()))?;
        url.set_path(&format!("/{name}"));
        Ok(Self {
            name,
            url: url.to_string(),
            admin_url,
        })
    }

    /// Makes new sessions on this database read-only, or writable again (as connecting to a
    /// standby during a failover would), and ends the open ones so the pools reconnect.
    pub async fn set_read_only(&self, read_only: bool) -> Result<(), sqlx::Error> {
        let mut admin = PgConnection::connect(&self.admin_url).await?;
        let value = if read_only { "on" } else { "off" };
        admin
            .execute(
                format!(
                    "ALTER DATABASE {} SET default_transaction_read_only = {value}",
                    self.name
                )
                .as_str(),
            )
            .await?;
        admin.close().await?;
        self.terminate_connections().await.map(|_| ())
    }

    /// Refuses new sessions on this database (as a server that is down would) and ends the
    /// open ones; or accepts them again.
    pub async fn set_reachable(&self, reachable: bool) -> Result<(), sqlx::Error> {
        let mut admin = PgConnection::connect(&self.admin_url).await?;
        admin
            .execute(
                format!(
                    "ALTER DATABASE {} WITH ALLOW_CONNECTIONS {reachable}",
                    self.name
                )
                .as_str(),
            )
            .await?;
        admin.close().await?;
        if !reachable {
            self.terminate_connections().await?;
        }
        Ok(())
    }

    /// Ends every session on this database (as an operator or a failover would).
    pub async fn terminate_connections(&self) -> Result<u64, sqlx::Error> {
        let mut admin = PgConnection::connect(&self.admin_url).await?;
        let ended = sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&self.name)
        .execute(&mut admin)
        .await?;
        admin.close().await?;
        Ok(ended.rows_affected())
    }
}

/// Once per test process: drops the databases left by test processes that were killed
/// before they could drop their own (their names carry the pid; a pid no longer running on
/// this machine is gone). Best effort: other runs' databases are left alone.
async fn drop_stale_databases(admin: &mut PgConnection) {
    static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if DONE.swap(true, Ordering::SeqCst) || !std::path::Path::new("/proc/self").exists() {
        return;
    }
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'hookd\\_test\\_%'")
            .fetch_all(&mut *admin)
            .await
            .unwrap_or_default();
    for name in names {
        let pid = name.split('_').nth(2).unwrap_or_default();
        let running = std::path::Path::new(&format!("/proc/{pid}")).exists();
        if pid.is_empty() || running || name.contains('"') {
            continue;
        }
        let _ = admin
            .execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
            .await;
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs outside async code (and maybe while the test's runtime shuts down): drop
        // the database from a thread with a runtime of its own. Sessions still open (a
        // server the test did not stop) are ended by FORCE.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url)
                    .await
                    .map_err(|e| e.to_string())?;
                admin
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await
                    .map_err(|e| e.to_string())?;
                admin.close().await.map_err(|e| e.to_string())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}
