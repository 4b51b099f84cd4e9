//! Set-based statements on either backend: a batch of rows as a table `t`
//! that one INSERT, UPDATE or SELECT works on, whatever the batch's size.
//!
//! - PostgreSQL: `t` is `UNNEST` of one typed array per column, so the
//!   statement text (and its cached plan) is the same for 1 row or 128.
//! - SQLite: `t` is a `VALUES` list; preparing is in-process and cheap.
//!
//! PostgreSQL arrays cannot hold NULL through the driver here, so nullable
//! text travels as `''` and comes back with `NULLIF(…, '')`.

use sea_orm::{DbBackend, Statement, Value};

/// Most bytes of row data in one statement on PostgreSQL. sqlx does not set
/// TCP_NODELAY, and a message sent in more than one write (over TLS, one
/// write per 16 KiB record) waits for the server's delayed ACK on Nagle's
/// algorithm: measured, 40 ms per statement, which took a batch of 15
/// events from 2 ms to 57 ms. SQLite has no such limit.
pub(crate) const PG_STATEMENT_BYTES: usize = 12 * 1024;

/// Splits `items` into runs whose estimated size stays under
/// [`PG_STATEMENT_BYTES`] on PostgreSQL (one run on SQLite); every run
/// holds at least one item.
pub(crate) fn chunks<T>(backend: DbBackend, items: &[T], size: impl Fn(&T) -> usize) -> Vec<&[T]> {
    if backend != DbBackend::Postgres {
        return if items.is_empty() {
            Vec::new()
        } else {
            vec![items]
        };
    }
    let mut runs = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        let item_bytes = size(item);
        if i > start && bytes + item_bytes > PG_STATEMENT_BYTES {
            runs.push(&items[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += item_bytes;
    }
    if start < items.len() {
        runs.push(&items[start..]);
    }
    runs
}

/// The SQL type of a column of `t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Text,
    BigInt,
    Bool,
    Bytes,
}

impl Ty {
    fn pg_array(self) -> &'static str {
        match self {
            Ty::Text => "text[]",
            Ty::BigInt => "bigint[]",
            Ty::Bool => "boolean[]",
            Ty::Bytes => "bytea[]",
        }
    }

    fn array_type(self) -> sea_orm::sea_query::ArrayType {
        use sea_orm::sea_query::ArrayType;
        match self {
            Ty::Text => ArrayType::String,
            Ty::BigInt => ArrayType::BigInt,
            Ty::Bool => ArrayType::Bool,
            Ty::Bytes => ArrayType::Bytes,
        }
    }
}

/// Rows for `t`, column by column.
#[derive(Debug)]
pub(crate) struct Rows {
    columns: Vec<(&'static str, Ty, Vec<Value>)>,
    len: usize,
}

impl Rows {
    /// An empty table with these columns.
    pub(crate) fn new(columns: &[(&'static str, Ty)]) -> Self {
        Rows {
            columns: columns
                .iter()
                .map(|(name, ty)| (*name, *ty, Vec::new()))
                .collect(),
            len: 0,
        }
    }

    /// Appends a row; `values` must follow the columns' order and types.
    pub(crate) fn push(&mut self, values: Vec<Value>) {
        debug_assert_eq!(values.len(), self.columns.len());
        for ((_, _, column), value) in self.columns.iter_mut().zip(values) {
            column.push(value);
        }
        self.len += 1;
    }

    /// `WITH t(…) AS (…) {body}`, with `body` referring to `t`'s columns;
    /// `extra` are bound after `t`'s values, as `$n`/`?` placeholders
    /// written by `body` through [`Params`].
    pub(crate) fn statement(
        self,
        backend: DbBackend,
        body: impl FnOnce(&mut Params) -> String,
    ) -> Statement {
        let names: Vec<&str> = self.columns.iter().map(|(n, _, _)| *n).collect();
        let mut params = Params {
            backend,
            values: Vec::new(),
        };
        let source = match backend {
            DbBackend::Postgres => {
                let arrays: Vec<String> = self
                    .columns
                    .into_iter()
                    .map(|(_, ty, values)| {
                        let placeholder =
                            params.bind(Value::Array(ty.array_type(), Some(Box::new(values))));
                        format!("{placeholder}::{}", ty.pg_array())
                    })
                    .collect();
                format!("SELECT * FROM UNNEST({})", arrays.join(", "))
            }
            _ => {
                let width = self.columns.len();
                let mut columns: Vec<std::vec::IntoIter<Value>> = self
                    .columns
                    .into_iter()
                    .map(|(_, _, values)| values.into_iter())
                    .collect();
                let mut tuples = Vec::with_capacity(self.len);
                for _ in 0..self.len {
                    let mut cells = Vec::with_capacity(width);
                    for column in &mut columns {
                        let value = column.next().unwrap_or(Value::String(None));
                        cells.push(params.bind(value));
                    }
                    tuples.push(format!("({})", cells.join(", ")));
                }
                format!("VALUES {}", tuples.join(", "))
            }
        };
        let body = body(&mut params);
        Statement::from_sql_and_values(
            backend,
            format!("WITH t({}) AS ({source}) {body}", names.join(", ")),
            params.values,
        )
    }
}

/// The values bound to a statement, in placeholder order.
#[derive(Debug)]
pub(crate) struct Params {
    backend: DbBackend,
    values: Vec<Value>,
}

impl Params {
    /// An empty list for a statement on `backend`.
    pub(crate) fn new(backend: DbBackend) -> Self {
        Params {
            backend,
            values: Vec::new(),
        }
    }

    /// Binds `value` and returns its placeholder.
    pub(crate) fn bind(&mut self, value: Value) -> String {
        self.values.push(value);
        match self.backend {
            DbBackend::Postgres => format!("${}", self.values.len()),
            _ => "?".to_owned(),
        }
    }

    /// `column = ANY($n)` (PostgreSQL) or `column IN (…)` (SQLite) for a
    /// non-empty list of text values.
    pub(crate) fn any_text(&mut self, column: &str, values: &[String]) -> String {
        match self.backend {
            DbBackend::Postgres => {
                let array = Value::Array(
                    sea_orm::sea_query::ArrayType::String,
                    Some(Box::new(values.iter().map(|v| v.clone().into()).collect())),
                );
                format!("{column} = ANY({}::text[])", self.bind(array))
            }
            _ => self.json_list(column, serde_json::json!(values)),
        }
    }

    /// `column = ANY($n)` / `column IN (…)` for a non-empty list of
    /// integers.
    pub(crate) fn any_bigint(&mut self, column: &str, values: &[i64]) -> String {
        match self.backend {
            DbBackend::Postgres => {
                let array = Value::Array(
                    sea_orm::sea_query::ArrayType::BigInt,
                    Some(Box::new(values.iter().map(|v| (*v).into()).collect())),
                );
                format!("{column} = ANY({}::bigint[])", self.bind(array))
            }
            _ => self.json_list(column, serde_json::json!(values)),
        }
    }

    /// SQLite's `column IN (…)` over one JSON array parameter: the same
    /// statement text for any number of values, so it is prepared once and
    /// served from the connection's statement cache (a list of `?` per value
    /// made a new statement for every batch size).
    fn json_list(&mut self, column: &str, values: serde_json::Value) -> String {
        let list = self.bind(values.to_string().into());
        format!("{column} IN (SELECT value FROM json_each({list}))")
    }

    /// The statement with these values.
    pub(crate) fn statement(self, sql: String) -> Statement {
        Statement::from_sql_and_values(self.backend, sql, self.values)
    }
}

/// Nullable text as it travels in `t` (see the module docs).
pub(crate) fn opt_text(value: Option<&str>) -> Value {
    value.unwrap_or_default().to_owned().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_stay_under_the_limit_and_keep_every_item() {
        let items: Vec<usize> = vec![5000, 5000, 5000, 20_000, 10, 10];
        let runs = chunks(DbBackend::Postgres, &items, |n| *n);
        assert_eq!(
            runs,
            vec![&items[0..2], &items[2..3], &items[3..4], &items[4..6]]
        );
        assert_eq!(chunks(DbBackend::Sqlite, &items, |n| *n), vec![&items[..]]);
        assert!(chunks(DbBackend::Postgres, &items[..0], |n| *n).is_empty());
    }
}
