//! The statement kit: SQL text with numbered parameters, built the same way for both backends;
//! multi-row statements in chunks whose shapes stay prepared (`statement_chunks`,
//! `padded_chunks`); rows carried as one JSON parameter (`Rows::recordset`, PostgreSQL);
//! data-modifying statements chained into one (`chained`).

use super::*;

/// Most rows in one multi-row statement: a power of two, far below both backends' limits on
/// bound parameters.
pub(crate) const ROWS_PER_STATEMENT: usize = 256;

/// Splits `rows` into runs of power-of-two length, largest first (37 rows: 32, 4, 1). A
/// multi-row statement's text then takes one of a few shapes, which both drivers keep
/// prepared, instead of a new text (parsed and planned again) for every count of rows.
pub(crate) fn statement_chunks<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if rows.is_empty() {
            return None;
        }
        let take = ROWS_PER_STATEMENT.min(1 << rows.len().ilog2());
        let (chunk, rest) = rows.split_at(take);
        rows = rest;
        Some(chunk)
    })
}

/// Splits `rows` for a statement that may name a row twice (`IN (...)`, `OR`): runs of at
/// most [`ROWS_PER_STATEMENT`], each padded to a power of two by repeating its last row, so
/// one statement per 256 rows (not one per set bit of the count, as [`statement_chunks`]
/// needs for inserts) and still one of nine texts.
pub(crate) fn padded_chunks<T>(rows: &[T]) -> impl Iterator<Item = impl Iterator<Item = &T>> {
    rows.chunks(ROWS_PER_STATEMENT).map(|chunk| {
        let pad = chunk.len().next_power_of_two() - chunk.len();
        chunk
            .iter()
            .chain(chunk.last().into_iter().cycle().take(pad))
    })
}

/// A column of a multi-row insert: its name and, for PostgreSQL's one-statement form, its
/// type.
pub(crate) type Column = (&'static str, &'static str);

/// Rows to insert into a table, values in `columns`' order.
pub(crate) struct Rows {
    pub(crate) table: &'static str,
    pub(crate) columns: &'static [Column],
    pub(crate) rows: Vec<Vec<Param>>,
}

impl Rows {
    /// SQLite's form: multi-row `VALUES` in [`statement_chunks`] (a statement there is a
    /// function call), each statement with the count of rows it carries.
    pub(crate) fn values(self, suffix: &str) -> Vec<(Statement, usize)> {
        let names = self.names();
        let sizes: Vec<usize> = statement_chunks(&self.rows).map(<[_]>::len).collect();
        let mut rows = self.rows.into_iter();
        sizes
            .into_iter()
            .map(|size| {
                let mut insert =
                    Statement::new(&format!("INSERT INTO {} ({names}) VALUES ", self.table));
                for (n, row) in rows.by_ref().take(size).enumerate() {
                    insert.sep(n, ", ").sql("(");
                    for (c, value) in row.into_iter().enumerate() {
                        insert.sep(c, ", ").param(value);
                    }
                    insert.sql(")");
                }
                insert.sql(suffix);
                (insert, size)
            })
            .collect()
    }

    /// PostgreSQL's form: one statement whatever the count, reading the rows from one JSON
    /// parameter (`None` without rows). Each statement is a round trip there, and the
    /// power-of-two chunks made one per set bit of the count (2.4 event inserts per batch
    /// in session 11's log).
    pub(crate) fn recordset(&self, suffix: &str) -> Option<Statement> {
        if self.rows.is_empty() {
            return None;
        }
        let mut json = String::from("[");
        for (n, row) in self.rows.iter().enumerate() {
            json.push_str(if n == 0 { "{" } else { ",{" });
            for (c, ((name, _), value)) in self.columns.iter().zip(row).enumerate() {
                if c > 0 {
                    json.push(',');
                }
                json.push('"');
                json.push_str(name);
                json.push_str("\":");
                value.write_json(&mut json);
            }
            json.push('}');
        }
        json.push(']');
        // Binary columns travel as hex: JSON has no bytes.
        let select = self
            .columns
            .iter()
            .map(|(name, ty)| match *ty {
                "bytea" => format!("decode(x.{name}, 'hex')"),
                _ => format!("x.{name}"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let record = self
            .columns
            .iter()
            .map(|(name, ty)| format!("{name} {}", if *ty == "bytea" { "text" } else { ty }))
            .collect::<Vec<_>>()
            .join(", ");
        let mut insert = Statement::new(&format!(
            "INSERT INTO {} ({}) SELECT {select} FROM json_to_recordset(",
            self.table,
            self.names()
        ));
        insert
            .param(Param::Text(json))
            .sql(&format!("::json) AS x({record}){suffix}"));
        Some(insert)
    }

    pub(crate) fn names(&self) -> String {
        let names: Vec<&str> = self.columns.iter().map(|(name, _)| *name).collect();
        names.join(", ")
    }
}

/// PostgreSQL: `statements` as one, the first ones as data-modifying `WITH` queries of the
/// last, so that they cost one round trip. They share one snapshot: none may need another's
/// rows (inserts into different tables; deletes that come after them).
pub(crate) fn chained(statements: Vec<Statement>) -> Option<Statement> {
    let count = statements.len();
    let mut out = Statement::new(if count > 1 { "WITH " } else { "" });
    for (n, statement) in statements.into_iter().enumerate() {
        if n + 1 < count {
            out.sep(n, ", ").sql(&format!("w{n} AS ("));
            out.append(statement);
            out.sql(")");
        } else {
            out.sql(if n > 0 { " " } else { "" });
            out.append(statement);
        }
    }
    (count > 0).then_some(out)
}

/// A value bound to a statement built at run time.
pub(crate) enum Param {
    Text(String),
    Int(i64),
    Blob(Vec<u8>),
    NullableText(Option<String>),
    NullableInt(Option<i64>),
    NullableBlob(Option<Vec<u8>>),
}

impl Param {
    /// The value as JSON, bytes as a hex string (see [`Rows::recordset`]).
    pub(crate) fn write_json(&self, out: &mut String) {
        use std::fmt::Write;
        match self {
            Param::Text(v) | Param::NullableText(Some(v)) => {
                out.push_str(&serde_json::Value::from(v.as_str()).to_string());
            }
            Param::Int(v) | Param::NullableInt(Some(v)) => {
                let _ = write!(out, "{v}");
            }
            Param::Blob(v) | Param::NullableBlob(Some(v)) => {
                out.push('"');
                for byte in v {
                    let _ = write!(out, "{byte:02x}");
                }
                out.push('"');
            }
            Param::NullableText(None) | Param::NullableInt(None) | Param::NullableBlob(None) => {
                out.push_str("null");
            }
        }
    }
}

/// SQL text and its parameters, built together so every `$n` gets its value. Each `$n`
/// appears once and in order, so SQLite (which numbers named parameters by first
/// appearance) binds them by position as PostgreSQL does: one statement serves both
/// drivers, sqlx's and the SQLite connection thread's.
pub(crate) struct Statement {
    pub(crate) sql: String,
    pub(crate) params: Vec<Param>,
}

impl Statement {
    pub(crate) fn new(sql: &str) -> Self {
        Statement {
            sql: sql.to_owned(),
            params: Vec::new(),
        }
    }

    pub(crate) fn sql(&mut self, text: &str) -> &mut Self {
        self.sql.push_str(text);
        self
    }

    /// `separator` before every item but the first.
    pub(crate) fn sep(&mut self, index: usize, separator: &str) -> &mut Self {
        if index > 0 {
            self.sql.push_str(separator);
        }
        self
    }

    pub(crate) fn param(&mut self, value: Param) -> &mut Self {
        self.params.push(value);
        self.sql.push_str(&format!("${}", self.params.len()));
        self
    }

    /// Appends `other`, its `$n` numbered on after this one's.
    pub(crate) fn append(&mut self, other: Statement) {
        let offset = self.params.len();
        let mut rest = other.sql.as_str();
        while let Some(at) = rest.find('$') {
            self.sql.push_str(&rest[..=at]);
            rest = &rest[at + 1..];
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            match rest[..digits].parse::<usize>() {
                Ok(n) => self.sql.push_str(&(n + offset).to_string()),
                Err(_) => self.sql.push_str(&rest[..digits]),
            }
            rest = &rest[digits..];
        }
        self.sql.push_str(rest);
        self.params.extend(other.params);
    }

    /// The statement as a sqlx query.
    pub(super) fn query(self) -> sqlx::query::Query<'static, Any, sqlx::any::AnyArguments> {
        let mut query = sqlx::query(AssertSqlSafe(self.sql));
        for param in self.params {
            query = match param {
                Param::Text(v) => query.bind(v),
                Param::Int(v) => query.bind(v),
                Param::Blob(v) => query.bind(v),
                Param::NullableText(v) => query.bind(v),
                Param::NullableInt(v) => query.bind(v),
                Param::NullableBlob(v) => query.bind(v),
            };
        }
        query
    }

    /// A statement whose text numbers its parameters itself, `$1` to `$n` for `params` in
    /// order. A number may appear again, but each first appears after the one before it:
    /// SQLite numbers `$n` by first appearance, and its connection threads bind by position.
    pub(crate) fn with(sql: &str, params: Vec<Param>) -> Self {
        debug_assert!(
            numbered_in_order(sql, params.len()),
            "the parameters of `{sql}` do not first appear as $1 to ${}",
            params.len()
        );
        Statement {
            sql: sql.to_owned(),
            params,
        }
    }
}

/// Whether `sql`'s `$n` first appear as `$1`, `$2`, ... `$count`.
fn numbered_in_order(sql: &str, count: usize) -> bool {
    let mut highest = 0;
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if let Ok(n) = rest[..digits].parse::<usize>() {
            if n > highest + 1 {
                return false;
            }
            highest = highest.max(n);
        }
        rest = &rest[digits..];
    }
    highest == count
}

impl From<&str> for Param {
    fn from(v: &str) -> Self {
        Param::Text(v.to_owned())
    }
}

impl From<String> for Param {
    fn from(v: String) -> Self {
        Param::Text(v)
    }
}

impl From<i64> for Param {
    fn from(v: i64) -> Self {
        Param::Int(v)
    }
}

impl From<Vec<u8>> for Param {
    fn from(v: Vec<u8>) -> Self {
        Param::Blob(v)
    }
}

impl From<Option<String>> for Param {
    fn from(v: Option<String>) -> Self {
        Param::NullableText(v)
    }
}

impl From<Option<&str>> for Param {
    fn from(v: Option<&str>) -> Self {
        Param::NullableText(v.map(str::to_owned))
    }
}

impl From<Option<i64>> for Param {
    fn from(v: Option<i64>) -> Self {
        Param::NullableInt(v)
    }
}

/// How a record is read from a row: `run_from_row` and its kin in `rows.rs`, over either
/// driver's rows.
pub(crate) type Read<T> = fn(&dyn Columns) -> Result<T, StoreError>;

/// A transaction statements run in, of either driver: sqlx's, or rusqlite's on SQLite's
/// writer thread (`sqlite_thread.rs`). The batch interpreter ([`write_plan`]) and every
/// write of more than one statement are written once against it.
pub(crate) trait Transact {
    /// Runs `statement`; the rows it changed.
    fn execute(
        &mut self,
        statement: Statement,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The rows `statement` returns, each read by `read`.
    fn rows<T: Send + 'static>(
        &mut self,
        statement: Statement,
        read: Read<T>,
    ) -> impl Future<Output = Result<Vec<T>, StoreError>> + Send;
}

impl Transact for Transaction<'_, Any> {
    async fn execute(&mut self, statement: Statement) -> Result<u64, StoreError> {
        Ok(statement
            .query()
            .execute(&mut **self)
            .await?
            .rows_affected())
    }

    async fn rows<T: Send + 'static>(
        &mut self,
        statement: Statement,
        read: Read<T>,
    ) -> Result<Vec<T>, StoreError> {
        let rows = statement.query().fetch_all(&mut **self).await?;
        rows.iter().map(|row| read(row)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_chunks_cover_the_rows_in_one_power_of_two_statement_per_256() {
        let mut shapes = std::collections::BTreeSet::new();
        for n in 0..1_100usize {
            let rows: Vec<usize> = (0..n).collect();
            let chunks: Vec<Vec<usize>> =
                padded_chunks(&rows).map(|c| c.copied().collect()).collect();
            assert_eq!(chunks.len(), n.div_ceil(ROWS_PER_STATEMENT), "{n} rows");
            let mut seen: Vec<usize> = chunks.iter().flatten().copied().collect();
            seen.dedup();
            assert_eq!(
                seen, rows,
                "every row once, in order, padding next to its row"
            );
            for chunk in &chunks {
                assert!(chunk.len().is_power_of_two() && chunk.len() <= ROWS_PER_STATEMENT);
                shapes.insert(chunk.len());
            }
        }
        assert_eq!(shapes.len(), 9, "1, 2, 4, ... 256 rows: {shapes:?}");
    }

    #[test]
    fn statement_chunks_cover_the_rows_in_power_of_two_runs() {
        let mut shapes = std::collections::BTreeSet::new();
        for n in 0..1_100usize {
            let rows: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = statement_chunks(&rows).collect();
            assert_eq!(chunks.concat(), rows, "{n} rows");
            for pair in chunks.windows(2) {
                assert!(pair[0].len() >= pair[1].len(), "{n} rows: largest first");
            }
            for chunk in chunks {
                assert!(chunk.len().is_power_of_two() && chunk.len() <= ROWS_PER_STATEMENT);
                shapes.insert(chunk.len());
            }
        }
        // 1, 2, 4, ... 256: every count of rows is written with nine statement texts.
        assert_eq!(shapes.len(), 9);
    }

    #[test]
    fn chained_statements_number_their_parameters_on() {
        let mut first = Statement::new("DELETE FROM a WHERE x IN (");
        first
            .param(Param::Int(1))
            .sql(", ")
            .param(Param::Int(2))
            .sql(")");
        let mut second = Statement::new("DELETE FROM b WHERE y = ");
        second.param(Param::Int(3));
        let mut third = Statement::new("DELETE FROM c WHERE z = ");
        third.param(Param::Int(4));
        let one = chained(vec![first, second, third]).expect("three statements");
        assert_eq!(
            one.sql,
            "WITH w0 AS (DELETE FROM a WHERE x IN ($1, $2)), w1 AS (DELETE FROM b WHERE y = $3) \
             DELETE FROM c WHERE z = $4"
        );
        let values: Vec<i64> = one
            .params
            .iter()
            .map(|p| match p {
                Param::Int(v) => *v,
                _ => panic!("an int"),
            })
            .collect();
        assert_eq!(values, [1, 2, 3, 4]);
        let mut alone = Statement::new("DELETE FROM c WHERE z = ");
        alone.param(Param::Int(4));
        assert_eq!(
            chained(vec![alone]).map(|s| s.sql),
            Some("DELETE FROM c WHERE z = $1".to_owned())
        );
        assert!(chained(Vec::new()).is_none());
    }

    #[test]
    fn a_recordset_carries_its_rows_as_json_with_bytes_in_hex() {
        let rows = Rows {
            table: "t",
            columns: &[
                ("name", "text"),
                ("n", "bigint"),
                ("data", "bytea"),
                ("note", "text"),
            ],
            rows: vec![
                vec![
                    Param::Text("quote \" and\nline".into()),
                    Param::Int(-7),
                    Param::Blob(vec![0, 0xff, 0x10]),
                    Param::NullableText(None),
                ],
                vec![
                    Param::Text("b".into()),
                    Param::NullableInt(Some(1 << 40)),
                    Param::NullableBlob(None),
                    Param::NullableText(Some("x".into())),
                ],
            ],
        };
        let insert = rows.recordset(" ON CONFLICT DO NOTHING").expect("rows");
        assert_eq!(
            insert.sql,
            "INSERT INTO t (name, n, data, note) SELECT x.name, x.n, decode(x.data, 'hex'), x.note \
             FROM json_to_recordset($1::json) AS x(name text, n bigint, data text, note text) \
             ON CONFLICT DO NOTHING"
        );
        let [Param::Text(json)] = insert.params.as_slice() else {
            panic!("one JSON parameter");
        };
        let parsed: serde_json::Value = serde_json::from_str(json).expect("valid JSON");
        assert_eq!(
            parsed,
            serde_json::json!([
                {"name": "quote \" and\nline", "n": -7, "data": "00ff10", "note": null},
                {"name": "b", "n": 1_i64 << 40, "data": null, "note": "x"},
            ])
        );
        let empty = Rows {
            rows: Vec::new(),
            ..rows
        };
        assert!(empty.recordset("").is_none());
    }

    #[test]
    fn numbered_statements_must_name_their_parameters_in_order() {
        assert!(numbered_in_order("SELECT 1", 0));
        assert!(numbered_in_order(
            "a = $1 AND (b = $2 OR b = $1) LIMIT $3",
            3
        ));
        assert!(numbered_in_order("$1 $2 $3 $4 $5 $6 $7 $8 $9 $10", 10));
        // SQLite would bind the second value to $3.
        assert!(!numbered_in_order("a = $1 AND b = $3 AND c = $2", 3));
        // One value too few, or one unused.
        assert!(!numbered_in_order("a = $1 AND b = $2", 3));
        assert!(!numbered_in_order("a = $1 AND b = $2", 1));
    }
}
