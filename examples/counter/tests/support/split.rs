//! A load balancer that splits by method, as a real one may split a session's requests:
//! every `POST` to one node, everything else to another, behind one origin (so the browser
//! keeps one cookie jar). It also serves `/start/{page}`, a page whose form posts itself at
//! once: a browser run on it submits the counter's form without a script of its own.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

/// The split: where `POST`s go and where the rest goes.
#[derive(Clone)]
struct Backends {
    post: String,
    other: String,
    client: reqwest::Client,
}

/// Starts the balancer; returns its base URL and its server task.
pub async fn start(post_to: &str, others_to: &str) -> (String, tokio::task::JoinHandle<()>) {
    let backends = Backends {
        post: post_to.to_owned(),
        other: others_to.to_owned(),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    };
    let app = axum::Router::new()
        .route("/start/{page}", get(start_page))
        .fallback(forward)
        .with_state(backends);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, task)
}

async fn start_page(Path(page): Path<String>) -> Html<String> {
    Html(format!(
        r#"<!doctype html><form method="post" action="/pages/{page}/views"></form>
<script>document.forms[0].submit()</script>"#
    ))
}

/// Passes the request to its backend as it is, and the answer back as it is (a redirect
/// is the browser's to follow).
async fn forward(State(b): State<Backends>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let base = if parts.method == axum::http::Method::POST {
        &b.post
    } else {
        &b.other
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        if name != "host" {
            headers.append(name, value.clone());
        }
    }
    let sent = b
        .client
        .request(parts.method, format!("{base}{path}"))
        .headers(headers)
        .body(body)
        .send()
        .await;
    let answer = match sent {
        Ok(answer) => answer,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if name != "transfer-encoding" && name != "content-length" {
            response = response.header(name, value);
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    response.body(Body::from(bytes)).unwrap()
}
