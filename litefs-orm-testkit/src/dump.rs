//! A database's whole content as text, for tests that compare databases.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

/// Every table of the database behind `db` — its `CREATE` statement, then its rows as SQL
/// literals in sorted order — as one text. Two dumps are equal exactly when the databases
/// hold the same tables with the same rows (rowids aside, unless a column holds them), so a
/// test can show that a refused request left a database unchanged, or that a replica holds
/// what its primary holds.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sea_orm::DbErr> {
/// use litefs_orm_testkit::dump;
/// use sea_orm::{ConnectionTrait, Database};
///
/// let db = Database::connect("sqlite::memory:").await?;
/// db.execute_unprepared("CREATE TABLE t (x, y); INSERT INTO t VALUES (1, 'a')").await?;
/// let before = dump(&db).await?;
/// assert!(before.contains("1,'a'"), "{before}");
///
/// db.execute_unprepared("UPDATE t SET y = 'b'").await?;
/// assert_ne!(dump(&db).await?, before);
/// # Ok(()) }
/// ```
pub async fn dump(db: &impl ConnectionTrait) -> Result<String, DbErr> {
    let sql = |s: String| Statement::from_string(DbBackend::Sqlite, s);
    let tables = db
        .query_all_raw(sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name".into(),
        ))
        .await?;
    let mut out = String::new();
    for table in tables {
        let name: String = table.try_get_by_index(0)?;
        let create: Option<String> = table.try_get_by_index(1)?;
        let columns = db
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "SELECT name FROM pragma_table_info(?) ORDER BY cid",
                [name.clone().into()],
            ))
            .await?;
        let row = columns
            .iter()
            .map(|c| {
                Ok(format!(
                    "quote({})",
                    ident(&c.try_get_by_index::<String>(0)?)
                ))
            })
            .collect::<Result<Vec<_>, DbErr>>()?
            .join(" || ',' || ");
        let rows: Option<String> = match row.is_empty() {
            true => None,
            false => db
                .query_one_raw(sql(format!(
                    "SELECT group_concat(r, char(10)) FROM \
                     (SELECT {row} AS r FROM {} ORDER BY 1)",
                    ident(&name)
                )))
                .await?
                .map(|r| r.try_get_by_index(0))
                .transpose()?
                .flatten(),
        };
        out.push_str(create.as_deref().unwrap_or(&name));
        out.push_str(";\n");
        if let Some(rows) = rows {
            out.push_str(&rows);
            out.push('\n');
        }
    }
    Ok(out)
}

/// `name` as a quoted SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
