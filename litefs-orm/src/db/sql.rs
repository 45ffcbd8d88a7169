//! Tells reads from writes in SQL text, to route plain SeaORM statements.

/// True when `sql` only reads: `SELECT`, `VALUES`, `EXPLAIN`, a read-only `PRAGMA`, or a
/// `WITH` that contains no write. Anything unsure counts as a write.
pub(crate) fn is_read(sql: &str) -> bool {
    let mut words = keywords(sql);
    match words.next().as_deref() {
        Some("SELECT" | "VALUES" | "EXPLAIN") => !keywords(sql).any(|w| is_write_keyword(&w)),
        Some("WITH") => !keywords(sql).any(|w| is_write_keyword(&w)),
        Some("PRAGMA") => !sql.contains('='),
        _ => false,
    }
}

fn is_write_keyword(w: &str) -> bool {
    matches!(
        w,
        "INSERT" | "UPDATE" | "DELETE" | "REPLACE" | "CREATE" | "DROP" | "ALTER"
    )
}

/// Upper-cased words outside comments and quoted strings or identifiers.
fn keywords(sql: &str) -> impl Iterator<Item = String> + '_ {
    let mut chars = sql.chars().peekable();
    std::iter::from_fn(move || {
        loop {
            let c = chars.next()?;
            match c {
                '-' if chars.peek() == Some(&'-') => {
                    for c in chars.by_ref() {
                        if c == '\n' {
                            break;
                        }
                    }
                }
                '/' if chars.peek() == Some(&'*') => {
                    chars.next();
                    let mut prev = ' ';
                    for c in chars.by_ref() {
                        if prev == '*' && c == '/' {
                            break;
                        }
                        prev = c;
                    }
                }
                '\'' | '"' | '`' => {
                    for q in chars.by_ref() {
                        if q == c {
                            break;
                        }
                    }
                }
                '[' => {
                    for q in chars.by_ref() {
                        if q == ']' {
                            break;
                        }
                    }
                }
                c if c.is_ascii_alphabetic() || c == '_' => {
                    let mut word = String::from(c.to_ascii_uppercase());
                    while let Some(&n) = chars.peek() {
                        if n.is_ascii_alphanumeric() || n == '_' {
                            word.push(n.to_ascii_uppercase());
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    return Some(word);
                }
                _ => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::is_read;

    #[test]
    fn selects_are_reads() {
        assert!(is_read(
            r#"SELECT "post"."id" FROM "post" WHERE "title" = 'insert'"#
        ));
        assert!(is_read("  -- note\n select 1"));
        assert!(is_read("PRAGMA table_info(post)"));
    }

    #[test]
    fn writes_and_unknowns_are_not_reads() {
        assert!(!is_read(
            r#"INSERT INTO "post" ("title") VALUES ('x') RETURNING "id""#
        ));
        assert!(!is_read("WITH x AS (SELECT 1) DELETE FROM post"));
        assert!(!is_read("PRAGMA journal_mode = WAL"));
        assert!(!is_read("BEGIN"));
        assert!(!is_read(""));
    }
}
