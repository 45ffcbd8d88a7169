//! The HTML the counter serves: the page with its count, error pages, and page-name checks.

use std::fmt::Write;

use litefs_orm::Role;

/// Longest accepted page name.
pub const MAX_PAGE_NAME: usize = 64;

/// Checks a page name from `/pages/{name}`: 1 to [`MAX_PAGE_NAME`] ASCII letters, digits,
/// `-` or `_`. Returns why it is refused.
pub fn check_page_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_PAGE_NAME {
        return Err(format!(
            "a page name has 1 to {MAX_PAGE_NAME} characters; this one has {}",
            name.chars().count()
        ));
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        Some(c) => Err(format!(
            "a page name may only hold letters, digits, '-' and '_'; {c:?} is not allowed"
        )),
        None => Ok(()),
    }
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What a counted view shows.
#[derive(Debug)]
pub struct CountedView<'a> {
    /// The page counted.
    pub page: &'a str,
    /// Its count after this view.
    pub count: i64,
    /// The node that served it.
    pub node: &'a str,
    /// That node's role.
    pub role: &'a Role,
    /// That node's LiteFS TXID (`None` when standalone).
    pub txid: Option<u64>,
}

/// Who the primary is, as the page says it.
pub fn primary_of(role: &Role, node: &str) -> String {
    match role {
        Role::Standalone => format!("{node} (standalone: no LiteFS)"),
        Role::Primary => format!("{node} (this node)"),
        Role::Replica { primary } => primary.clone(),
        Role::NoPrimary => "none known (an election may be under way)".to_owned(),
    }
}

/// The page of a counted view.
pub fn counted_page(v: &CountedView<'_>) -> String {
    let page = escape(v.page);
    let mut body = String::new();
    let _ = write!(
        body,
        r#"<h1>Views of <code>{page}</code>: <output id="count">{count}</output></h1>
<dl>
<dt>Served by</dt><dd id="node">{node}</dd>
<dt>Role</dt><dd id="role">{role}</dd>
<dt>Primary</dt><dd id="primary">{primary}</dd>
<dt>LiteFS TXID here</dt><dd id="txid">{txid}</dd>
</dl>
<p>Reload to count another view. Every view is counted once, on the primary, whichever node serves it.</p>
<form id="count-form" method="post" action="/pages/{page}/views"><button>Count a view and come back</button></form>
<nav><a href="/">home</a> · <a href="/pages/about">about</a> · <a href="/pages/blog">blog</a> · <a href="/api/counts">all counts (JSON)</a></nav>"#,
        count = v.count,
        node = escape(v.node),
        role = escape(&v.role.to_string()),
        primary = escape(&primary_of(v.role, v.node)),
        txid = v
            .txid
            .map_or_else(|| "none (standalone)".to_owned(), |t| t.to_string()),
    );
    let views = if v.count == 1 { "view" } else { "views" };
    document(&format!("{}: {} {views}", v.page, v.count), &body)
}

/// Whether a failed request's view was counted anyway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Committed {
    /// It was: the primary committed it.
    Yes,
    /// It was not.
    No,
    /// Unknown: the request reached the primary, and no answer came back.
    Maybe,
}

impl Committed {
    /// `yes`, `no`, `maybe`: the page's `data-committed` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Committed::Yes => "yes",
            Committed::No => "no",
            Committed::Maybe => "maybe",
        }
    }
}

/// An error page: a title, the message, whether the view was counted, and the node.
pub fn error_page(title: &str, message: &str, committed: Committed, node: &str) -> String {
    let body = format!(
        r#"<h1>{title}</h1>
<p id="error" data-committed="{committed}">{message}</p>
<p>Served by <span id="node">{node}</span>. <a href="/">home</a></p>"#,
        title = escape(title),
        message = escape(message),
        committed = committed.as_str(),
        node = escape(node),
    );
    document(title, &body)
}

fn document(title: &str, body: &str) -> String {
    document_with(title, "", body)
}

/// A page titled `title` with `head` added to its `<head>` and `body` in its frame.
pub fn document_with(title: &str, head: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 0; background: #f4f1ea; color: #1d1d1f; }}
main {{ max-width: 40rem; margin: 4rem auto; padding: 2rem 2.5rem; background: #fff; border-radius: 12px; box-shadow: 0 2px 12px #0002; }}
h1 {{ font-size: 1.7rem; }}
output {{ font-size: 3rem; font-weight: 700; color: #6b3fd4; display: block; margin-top: .5rem; }}
dl {{ display: grid; grid-template-columns: max-content 1fr; gap: .4rem 1.2rem; }}
dt {{ color: #666; }} dd {{ margin: 0; font-family: ui-monospace, monospace; }}
nav a, p a {{ color: #6b3fd4; }}
#error {{ color: #a4161a; }}
</style>
{head}
</head>
<body><main>
{body}
</main></body>
</html>
"#,
        title = escape(title),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_of_safe_characters_are_accepted() {
        for name in ["home", "a", "blog-post_2", &"x".repeat(MAX_PAGE_NAME)] {
            assert_eq!(check_page_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn empty_long_and_unsafe_names_are_refused() {
        for name in [
            "",
            &"x".repeat(MAX_PAGE_NAME + 1),
            "a b",
            "<script>",
            "é",
            "a.b",
            "a/b",
        ] {
            assert!(check_page_name(name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn the_page_shows_count_node_role_and_primary_escaped() {
        let role = Role::Replica {
            primary: "127.0.0.1:8080".into(),
        };
        let html = counted_page(&CountedView {
            page: "home",
            count: 42,
            node: "<n2>",
            role: &role,
            txid: Some(7),
        });
        assert!(html.contains(r#"<output id="count">42</output>"#), "{html}");
        assert!(html.contains(r#"<dd id="node">&lt;n2&gt;</dd>"#), "{html}");
        assert!(html.contains("replica of 127.0.0.1:8080"), "{html}");
        assert!(
            html.contains(r#"<dd id="primary">127.0.0.1:8080</dd>"#),
            "{html}"
        );
        assert!(html.contains(r#"<dd id="txid">7</dd>"#), "{html}");
    }
}
