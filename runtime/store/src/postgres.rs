//! The PostgreSQL backend, for several server nodes sharing one database.

use sqlx::any::AnyPoolOptions;

use crate::StoreError;
use crate::sql::{Dialect, SqlStore};

/// Connects to `url` (`postgres://...`) and applies the migrations.
pub async fn open(url: &str) -> Result<SqlStore, StoreError> {
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(16)
        .connect(&with_statement_cache(url))
        .await?;
    sqlx::migrate!("./migrations/postgres").run(&pool).await?;
    Ok(SqlStore::new(pool, Dialect::Postgres, None))
}

/// Statements each connection keeps prepared, unless the URL sets it: a batch's statements
/// take about a hundred shapes (`sql::statement_chunks`), above sqlx's default of 100.
const PREPARED_STATEMENTS: usize = 256;

/// `url` with `statement-cache-capacity` set to [`PREPARED_STATEMENTS`] where it says none.
fn with_statement_cache(url: &str) -> String {
    if url.contains("statement-cache-capacity=") {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}statement-cache-capacity={PREPARED_STATEMENTS}")
}

#[cfg(test)]
mod tests {
    use super::with_statement_cache;

    #[test]
    fn the_statement_cache_is_set_unless_the_url_sets_it() {
        assert_eq!(
            with_statement_cache("postgres://u@h/db"),
            "postgres://u@h/db?statement-cache-capacity=256"
        );
        assert_eq!(
            with_statement_cache("postgres://u@h/db?sslmode=disable"),
            "postgres://u@h/db?sslmode=disable&statement-cache-capacity=256"
        );
        let chosen = "postgres://u@h/db?statement-cache-capacity=10";
        assert_eq!(with_statement_cache(chosen), chosen);
    }
}
