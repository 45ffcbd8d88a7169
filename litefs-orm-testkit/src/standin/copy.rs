//! Logical copy of a whole database: the attached `src` schema into `main`, inside the
//! caller's transaction.

use sea_orm::sqlx::{self, sqlite::SqliteConnection};

use super::sqlite::{SqlResult, exec, quote_ident, retry};

/// One row of `sqlite_master`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Object {
    kind: String,
    name: String,
    tbl_name: String,
    sql: Option<String>,
}

impl Object {
    fn is_internal(&self) -> bool {
        self.name.starts_with("sqlite_")
    }
    fn is_virtual(&self) -> bool {
        self.sql
            .as_deref()
            .is_some_and(|s| s.starts_with("CREATE VIRTUAL TABLE"))
    }
}

/// A table created and dropped at once, only to make SQLite create `main.sqlite_sequence`.
const MAKE_SEQUENCE: &str = "litefs_testkit_make_sequence";

/// The row-copy statements of the last schema seen, so an unchanged schema costs no
/// `pragma_table_xinfo` look-ups.
#[derive(Default)]
pub(crate) struct CopyCache {
    schema: Vec<Object>,
    rows_sql: String,
}

/// [`exec`] with [`retry!`].
async fn run(conn: &mut SqliteConnection, sql: String) -> SqlResult<()> {
    retry!(exec(conn, sql.clone()))
}

/// `sqlite_master` of `src` and of `main`, each in creation order.
async fn schemas(conn: &mut SqliteConnection) -> SqlResult<(Vec<Object>, Vec<Object>)> {
    let sql = "SELECT 0 AS s, rowid AS r, type, name, tbl_name, sql FROM src.sqlite_master \
               UNION ALL \
               SELECT 1, rowid, type, name, tbl_name, sql FROM main.sqlite_master \
               ORDER BY s, r";
    let rows: Vec<(i64, i64, String, String, String, Option<String>)> =
        retry!(sqlx::query_as(sql).fetch_all(&mut *conn))?;
    let (mut src, mut main) = (Vec::new(), Vec::new());
    for (s, _, kind, name, tbl_name, sql) in rows {
        let o = Object {
            kind,
            name,
            tbl_name,
            sql,
        };
        if s == 0 { src.push(o) } else { main.push(o) }
    }
    Ok((src, main))
}

/// Replaces everything in `main` with the contents of the attached `src`: schema (tables,
/// indexes, views, triggers), rows (with rowids), `sqlite_sequence` and `user_version`.
///
/// When both schemas are already identical and have no triggers, only the rows are replaced
/// (one batch of statements), so readers' prepared statements stay valid.
pub(crate) async fn copy_database(
    conn: &mut SqliteConnection,
    cache: &mut CopyCache,
) -> SqlResult<()> {
    let (src_all, main_all) = schemas(conn).await?;
    let has_seq = |all: &[Object]| all.iter().any(|o| o.name == "sqlite_sequence");
    let (src_seq, main_seq) = (has_seq(&src_all), has_seq(&main_all));
    let src: Vec<Object> = src_all.into_iter().filter(|o| !o.is_internal()).collect();
    let dst: Vec<Object> = main_all.into_iter().filter(|o| !o.is_internal()).collect();
    let mut sorted_src = src.clone();
    let mut sorted_dst = dst.clone();
    sorted_src.sort();
    sorted_dst.sort();
    let same_schema = sorted_src == sorted_dst && !src.iter().any(|o| o.kind == "trigger");
    let user_version: i64 =
        retry!(sqlx::query_scalar("PRAGMA src.user_version").fetch_one(&mut *conn))?;

    if !same_schema {
        for kind in ["trigger", "view", "index", "table"] {
            for o in dst.iter().filter(|o| o.kind == kind && o.sql.is_some()) {
                let kw = kind.to_uppercase();
                run(
                    conn,
                    format!("DROP {kw} IF EXISTS main.{}", quote_ident(&o.name)),
                )
                .await?;
            }
        }
        for t in src.iter().filter(|o| o.kind == "table") {
            let Some(sql) = t.sql.as_deref() else {
                continue;
            };
            // A virtual table creates its shadow tables, which sqlite_master lists too.
            let sql = match sql.strip_prefix("CREATE TABLE ") {
                Some(rest) => format!("CREATE TABLE IF NOT EXISTS {rest}"),
                None => sql.to_owned(),
            };
            run(conn, sql).await?;
        }
    }

    if cache.schema != sorted_src {
        let mut rows_sql = String::new();
        for t in src
            .iter()
            .filter(|o| o.kind == "table" && o.sql.is_some() && !o.is_virtual())
        {
            rows_sql.push_str(&copy_rows_sql(conn, &t.name).await?);
        }
        *cache = CopyCache {
            schema: sorted_src,
            rows_sql,
        };
    }
    let mut script = cache.rows_sql.clone();
    if src_seq && !main_seq {
        // `sqlite_sequence` cannot be created by name, and the tables just created need not
        // make it: it outlives the AUTOINCREMENT tables that made it on the primary. A
        // throw-away AUTOINCREMENT table makes SQLite create it (IF NOT EXISTS: it may be
        // there already when a table created above has AUTOINCREMENT).
        script.push_str(&format!(
            "CREATE TABLE main.{MAKE_SEQUENCE} (id INTEGER PRIMARY KEY AUTOINCREMENT);\n\
             DROP TABLE main.{MAKE_SEQUENCE};\n"
        ));
    }
    if main_seq || src_seq {
        script.push_str("DELETE FROM main.sqlite_sequence;\n");
    }
    if src_seq {
        script.push_str(
            "INSERT INTO main.sqlite_sequence (name, seq) SELECT name, seq FROM src.sqlite_sequence;\n",
        );
    }
    script.push_str(&format!("PRAGMA main.user_version = {user_version};\n"));
    // Safe to re-run after a partial failure: every table is emptied before it is refilled.
    run(conn, script).await?;

    if !same_schema {
        for kind in ["index", "view", "trigger"] {
            for o in src.iter().filter(|o| o.kind == kind) {
                if let Some(sql) = &o.sql {
                    run(conn, sql.clone()).await?;
                }
            }
        }
    }
    Ok(())
}

/// `DELETE FROM main.t; INSERT INTO main.t (rowid, cols...) SELECT rowid, cols... FROM src.t;`
/// leaving out generated columns, and the rowid for WITHOUT ROWID tables or when a column
/// shadows it.
async fn copy_rows_sql(conn: &mut SqliteConnection, table: &str) -> SqlResult<String> {
    let columns: Vec<String> = retry!(
        sqlx::query_scalar(
            "SELECT name FROM pragma_table_xinfo(?1, 'src') WHERE hidden = 0 ORDER BY cid",
        )
        .bind(table)
        .fetch_all(&mut *conn)
    )?;
    let without_rowid: Option<i64> = retry!(
        sqlx::query_scalar("SELECT wr FROM pragma_table_list WHERE schema = 'src' AND name = ?1")
            .bind(table)
            .fetch_optional(&mut *conn)
    )?;
    let shadowed = columns.iter().any(|c| {
        ["rowid", "oid", "_rowid_"]
            .iter()
            .any(|r| c.eq_ignore_ascii_case(r))
    });
    let mut cols: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    if without_rowid == Some(0) && !shadowed {
        cols.insert(0, "rowid".to_owned());
    }
    let list = cols.join(", ");
    let t = quote_ident(table);
    Ok(format!(
        "DELETE FROM main.{t};\nINSERT INTO main.{t} ({list}) SELECT {list} FROM src.{t};\n"
    ))
}
