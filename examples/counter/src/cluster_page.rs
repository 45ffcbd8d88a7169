//! `GET /cluster`: the cluster at a glance — a bar per node, as long as the node is behind
//! the primary, and a table of each node's role, TXID, lag and forwarded calls. Rendered on
//! the server (inline SVG, no script), and reloading itself every few seconds.

use std::fmt::Write;

use axum::extract::State;
use axum::response::Html;

use crate::app::AppState;
use crate::cluster::{ClusterNode, ClusterView, gather};
use crate::html::{document_with, escape};

/// Seconds between the page's reloads.
pub const REFRESH_SECONDS: u32 = 2;

/// Width of the chart, and of its label column.
const WIDTH: u32 = 640;
const LABEL: u32 = 200;
const ROW: u32 = 34;

/// `GET /cluster`.
pub async fn page(State(state): State<AppState>) -> Html<String> {
    Html(render(&gather(&state).await))
}

/// How a node stands, for its colour and its `data-state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Standing {
    Current,
    Behind,
    Unknown,
    Unreachable,
}

impl Standing {
    fn of(node: &ClusterNode) -> Self {
        match (&node.status, node.behind) {
            (None, _) => Standing::Unreachable,
            (Some(_), Some(0)) => Standing::Current,
            (Some(_), Some(_)) => Standing::Behind,
            (Some(_), None) => Standing::Unknown,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Standing::Current => "current",
            Standing::Behind => "behind",
            Standing::Unknown => "unknown",
            Standing::Unreachable => "unreachable",
        }
    }

    fn colour(self) -> &'static str {
        match self {
            Standing::Current => "#2a9d4b",
            Standing::Behind => "#d1495b",
            Standing::Unknown => "#e0a100",
            Standing::Unreachable => "#9a9a9a",
        }
    }
}

/// The node's name, or where it was asked when it did not answer.
fn name(node: &ClusterNode) -> &str {
    node.status.as_ref().map_or(&node.url, |s| &s.node)
}

/// The page for `view`.
pub fn render(view: &ClusterView) -> String {
    let mut body = String::new();
    let primary = view.primary_txid.map_or_else(
        || "unknown (the primary did not answer)".to_owned(),
        |t| t.to_string(),
    );
    let _ = write!(
        body,
        r#"<h1>The cluster, as <span id="seen-from">{node}</span> sees it</h1>
<p>Primary's TXID: <strong id="primary-txid">{primary}</strong>. Each bar is as long as the node is behind it in transactions, next to the node furthest behind.</p>
"#,
        node = escape(&view.node),
    );
    body.push_str(&chart(view));
    body.push_str(&table(view));
    body.push_str(&durability(view));
    let _ = write!(
        body,
        r#"<p class="note">Reloads every {REFRESH_SECONDS} s. <a href="/api/cluster">JSON</a> · <a href="/metrics">metrics</a> · <a href="/">home</a></p>"#
    );
    let head = format!(
        r#"<meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<style>
main {{ max-width: 46rem; }}
table {{ border-collapse: collapse; width: 100%; margin: 1rem 0; font-size: .9rem; }}
th, td {{ text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #ddd; }}
td.num {{ text-align: right; font-family: ui-monospace, monospace; white-space: nowrap; }}
tr[data-state="behind"] td:first-child {{ color: #d1495b; font-weight: 700; }}
tr[data-state="unreachable"] {{ color: #888; }}
.note {{ color: #666; font-size: .85rem; }}
</style>"#
    );
    document_with("Cluster", &head, &body)
}

fn chart(view: &ClusterView) -> String {
    let most = view
        .nodes
        .iter()
        .filter_map(|n| n.behind)
        .max()
        .unwrap_or(0)
        .max(1);
    let height = ROW * view.nodes.len() as u32 + 8;
    let span = WIDTH - LABEL - 110;
    let mut svg = format!(
        r#"<svg id="chart" role="img" aria-label="transactions each node is behind the primary" width="100%" viewBox="0 0 {WIDTH} {height}" xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif" font-size="13">
"#
    );
    for (i, node) in view.nodes.iter().enumerate() {
        let standing = Standing::of(node);
        let y = 4 + ROW * i as u32;
        let role = node.status.as_ref().map_or("", |s| s.role.as_str());
        let (bar, text) = match (standing, node.behind) {
            (Standing::Unreachable, _) => (span, "unreachable".to_owned()),
            (Standing::Unknown, _) => (4, "behind: unknown".to_owned()),
            (_, Some(0)) => (4, "up to date".to_owned()),
            (_, Some(n)) => (
                (span as u64 * n / most).max(4) as u32,
                format!("{n} behind"),
            ),
            (_, None) => (4, String::new()),
        };
        let opacity = if standing == Standing::Unreachable {
            "0.35"
        } else {
            "1"
        };
        let _ = writeln!(
            svg,
            r##"<g class="node" data-node="{name}" data-state="{state}">
<text x="0" y="{ty}" font-weight="600">{name}</text><text x="0" y="{ry}" fill="#666" font-size="11">{role}</text>
<rect x="{LABEL}" y="{y}" width="{span}" height="{bh}" rx="3" fill="#eee"/>
<rect x="{LABEL}" y="{y}" width="{bar}" height="{bh}" rx="3" fill="{colour}" opacity="{opacity}"/>
<text x="{tx}" y="{ty}" fill="{colour}">{text}</text>
</g>"##,
            name = escape(name(node)),
            state = standing.as_str(),
            ty = y + 13,
            ry = y + 26,
            role = escape(role),
            bh = ROW - 10,
            colour = standing.colour(),
            tx = LABEL + bar + 8,
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// What the primary acknowledges writes with, and whom it waits for.
fn durability(view: &ClusterView) -> String {
    let primary = view
        .nodes
        .iter()
        .filter_map(|n| n.status.as_ref())
        .find(|s| s.is_primary);
    match primary {
        Some(p) if !p.durability.is_empty() => format!(
            r#"<p id="durability">Durability: <strong>{}</strong>; the primary waits for <span id="waited-for">{}</span> live candidate(s), <span id="set-aside">{}</span> set aside.</p>
"#,
            escape(&p.durability),
            p.peers_waited_for,
            p.peers_set_aside
        ),
        _ => String::new(),
    }
}

fn table(view: &ClusterView) -> String {
    let mut out = String::from(
        "<table id=\"nodes\"><thead><tr><th>node</th><th>role</th><th>TXID</th><th>behind</th>\
         <th>.lag</th><th>forwarded/s</th><th>served/s</th></tr></thead><tbody>\n",
    );
    let dash = || "—".to_owned();
    for node in &view.nodes {
        let standing = Standing::of(node);
        let name = escape(name(node));
        let _ = match &node.status {
            Some(s) => writeln!(
                out,
                r#"<tr data-node="{name}" data-state="{state}" data-behind="{behind}"><td>{name}</td><td class="role">{role}</td><td class="num">{txid}</td><td class="num">{behind}</td><td class="num">{lag}</td><td class="num">{fwd:.1}</td><td class="num">{served:.1}</td></tr>"#,
                state = standing.as_str(),
                behind = node.behind.map_or_else(dash, |n| n.to_string()),
                role = escape(&s.role),
                txid = s.txid.map_or_else(dash, |t| t.to_string()),
                lag = s.lag_ms.map_or_else(dash, |ms| format!("{ms} ms")),
                fwd = s.forwarded_per_second,
                served = s.served_per_second,
            ),
            None => writeln!(
                out,
                r#"<tr data-node="{name}" data-state="unreachable"><td>{name}</td><td colspan="6">unreachable: {error}</td></tr>"#,
                error = escape(node.error.as_deref().unwrap_or("no answer")),
            ),
        };
    }
    out.push_str("</tbody></table>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::NodeView;

    fn node(name: &str, primary: bool, txid: u64, behind: u64) -> ClusterNode {
        ClusterNode {
            url: format!("http://{name}"),
            status: Some(NodeView {
                node: name.to_owned(),
                role: if primary {
                    "primary".into()
                } else {
                    "replica of n1".into()
                },
                is_primary: primary,
                txid: Some(txid),
                lag_ms: (!primary).then_some(5),
                forwarded_per_second: 1.5,
                served_per_second: 0.0,
                durability: "candidates".into(),
                peers_waited_for: 1,
                peers_set_aside: usize::from(primary),
            }),
            error: None,
            behind: Some(behind),
        }
    }

    fn view() -> ClusterView {
        let mut gone = node("n3", false, 0, 0);
        gone.status = None;
        gone.behind = None;
        gone.error = Some("no answer: timed out".into());
        ClusterView {
            node: "n1".into(),
            primary_txid: Some(12),
            nodes: vec![node("n1", true, 12, 0), node("n2", false, 9, 3), gone],
        }
    }

    #[test]
    fn a_node_behind_the_primary_is_marked_behind_with_its_distance() {
        let html = render(&view());
        assert!(
            html.contains(r#"<tr data-node="n2" data-state="behind" data-behind="3">"#),
            "{html}"
        );
        assert!(html.contains(">3 behind</text>"), "{html}");
    }

    #[test]
    fn a_node_that_does_not_answer_is_marked_unreachable() {
        let html = render(&view());
        assert!(
            html.contains(r#"<tr data-node="http://n3" data-state="unreachable">"#),
            "{html}"
        );
        assert!(html.contains("unreachable: no answer: timed out"), "{html}");
    }

    #[test]
    fn the_primary_is_up_to_date() {
        let html = render(&view());
        assert!(html.contains(r#"<g class="node" data-node="n1" data-state="current">"#));
    }

    #[test]
    fn the_page_says_what_the_primary_waits_for() {
        let page = render(&view());
        assert!(page.contains(r#"<strong>candidates</strong>"#), "{page}");
        assert!(page.contains(r#"<span id="waited-for">1</span>"#), "{page}");
        assert!(page.contains(r#"<span id="set-aside">1</span>"#), "{page}");
    }

    #[test]
    fn the_page_reloads_itself() {
        let html = render(&view());
        assert!(html.contains(r#"<meta http-equiv="refresh" content="2">"#));
    }
}
