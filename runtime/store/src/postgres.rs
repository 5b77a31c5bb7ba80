//! The PostgreSQL backend, for several server nodes sharing one database.

use sqlx::any::AnyPoolOptions;

use crate::StoreError;
use crate::sql::{Dialect, SqlStore};

/// Connects to `url` (`postgres://...`) and applies the migrations.
pub async fn open(url: &str) -> Result<SqlStore, StoreError> {
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(16)
        .connect(url)
        .await?;
    sqlx::migrate!("./migrations/postgres").run(&pool).await?;
    Ok(SqlStore::new(pool, Dialect::Postgres, None))
}
