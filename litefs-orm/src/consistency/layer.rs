//! The Axum (tower) layer that carries a session's tokens: it waits, before the handler
//! runs, until this node holds what the request's tokens name, and hands back the tokens of
//! the writes the handler made — in a cookie for browsers and a header for API clients.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::{BoxFuture, join_all};
use tower_layer::Layer;
use tower_service::Service;

use super::session::capture;
use super::token::{MAX_DATABASES, MAX_TOKEN_LEN, TokenError, Tokens};
use crate::db::ReplicatedDb;

/// The cookie tokens ride in, unless renamed.
pub const DEFAULT_COOKIE: &str = "litefs_orm_token";
/// The header tokens ride in (both ways), unless renamed.
pub const DEFAULT_HEADER: &str = "x-litefs-orm-token";
/// The header marking a response served before this node held the request's tokens.
pub const STALE_HEADER: &str = "x-litefs-orm-stale";

/// What a request gets when this node does not hold its tokens' commits within the bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnStale {
    /// `503 Service Unavailable` with `Retry-After` (seconds, at least 1): the client asks
    /// again, here or elsewhere. The default.
    Unavailable {
        /// The `Retry-After` value.
        retry_after: Duration,
    },
    /// Run the handler anyway, and mark the response with [`STALE_HEADER`]`: 1`.
    Serve,
}

/// What to do with a token that does not verify: malformed, forged, or of another cluster.
/// An expired token is not a bad one — a session's cookie outlives the token of a database
/// it stopped writing to, and the client cannot clear an `HttpOnly` cookie — so it is always
/// dropped, and the next cookie the layer writes leaves it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadTokens {
    /// Ignore it (logged at debug): the request runs as if it carried none. The default.
    Ignore,
    /// Refuse the request with `400 Bad Request`.
    Refuse,
}

/// Read-your-writes across requests and nodes, for an Axum router: add it with
/// `.layer(ConsistencyLayer::new(db))`. After a request whose handler made replicated
/// writes, the response carries their tokens (a cookie and a header); a later request that
/// carries them, to any node, waits until that node holds those commits before its handler
/// runs — at most [`wait`](ConsistencyLayer::wait), then as [`OnStale`] says. A request
/// without tokens pays for one task-local scope.
///
/// ```no_run
/// # async fn run(db: litefs_orm::ReplicatedDb) {
/// use litefs_orm::consistency::{ConsistencyLayer, OnStale};
/// let app: axum::Router = axum::Router::new()
///     .route("/", axum::routing::get(|| async { "hello" }))
///     .layer(ConsistencyLayer::new(db.clone()).on_stale(OnStale::Serve))
///     .merge(litefs_orm::router(db));
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ConsistencyLayer {
    settings: Arc<Settings>,
}

#[derive(Clone, Debug)]
struct Settings {
    databases: Vec<ReplicatedDb>,
    cookie: String,
    header: String,
    wait: Duration,
    on_stale: OnStale,
    bad_tokens: BadTokens,
    secure_cookie: bool,
}

impl ConsistencyLayer {
    /// A layer for `db`'s tokens; the wait bound is its
    /// [`replication_timeout`](crate::Config::replication_timeout).
    pub fn new(db: ReplicatedDb) -> Self {
        let wait = db.config().replication_timeout;
        ConsistencyLayer {
            settings: Arc::new(Settings {
                databases: vec![db],
                cookie: DEFAULT_COOKIE.to_owned(),
                header: DEFAULT_HEADER.to_owned(),
                wait,
                on_stale: OnStale::Unavailable {
                    retry_after: Duration::from_secs(1),
                },
                bad_tokens: BadTokens::Ignore,
                secure_cookie: false,
            }),
        }
    }

    fn with(mut self, change: impl FnOnce(&mut Settings)) -> Self {
        change(Arc::make_mut(&mut self.settings));
        self
    }

    /// Also carries the tokens of `db`, another database of the same cluster (the same
    /// secret): one cookie holds them all.
    pub fn database(self, db: ReplicatedDb) -> Self {
        self.with(|s| s.databases.push(db))
    }

    /// Renames the cookie (default [`DEFAULT_COOKIE`]).
    pub fn cookie_name(self, name: impl Into<String>) -> Self {
        self.with(|s| s.cookie = name.into())
    }

    /// Renames the header (default [`DEFAULT_HEADER`]).
    pub fn header_name(self, name: impl Into<String>) -> Self {
        self.with(|s| s.header = name.into().to_ascii_lowercase())
    }

    /// The longest a request waits for its tokens' commits.
    pub fn wait(self, bound: Duration) -> Self {
        self.with(|s| s.wait = bound)
    }

    /// What a request gets past the wait bound.
    pub fn on_stale(self, on_stale: OnStale) -> Self {
        self.with(|s| s.on_stale = on_stale)
    }

    /// What a token that does not verify gets.
    pub fn bad_tokens(self, bad: BadTokens) -> Self {
        self.with(|s| s.bad_tokens = bad)
    }

    /// Marks the cookie `Secure` (sent over HTTPS only).
    pub fn secure_cookie(self, secure: bool) -> Self {
        self.with(|s| s.secure_cookie = secure)
    }
}

impl<S> Layer<S> for ConsistencyLayer {
    type Service = Consistency<S>;

    fn layer(&self, inner: S) -> Consistency<S> {
        Consistency {
            inner,
            settings: self.settings.clone(),
        }
    }
}

/// The service [`ConsistencyLayer`] wraps around a router or handler.
#[derive(Clone, Debug)]
pub struct Consistency<S> {
    inner: S,
    settings: Arc<Settings>,
}

impl<S> Service<Request<Body>> for Consistency<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // The clone that was made ready serves this request.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let settings = self.settings.clone();
        Box::pin(async move {
            let carried = match settings.read_tokens(request.headers()) {
                Ok(tokens) => tokens,
                Err(why) => return Ok((StatusCode::BAD_REQUEST, why.to_string()).into_response()),
            };
            let stale = !carried.is_empty() && !settings.holds(&carried).await;
            if stale && let OnStale::Unavailable { retry_after } = settings.on_stale {
                let seconds = retry_after.as_secs().max(1).to_string();
                return Ok((
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, seconds)],
                    "this node has not caught up with this session's writes yet; retry",
                )
                    .into_response());
            }
            let (response, earned) = capture(inner.call(request)).await;
            let mut response = response?;
            if stale {
                response
                    .headers_mut()
                    .insert(STALE_HEADER, HeaderValue::from_static("1"));
            }
            if !earned.is_empty() {
                // The request's writes came after what it carried: they replace it, even at
                // a lower TXID (a failover lost the carried commit; only theirs can be held).
                let mut tokens = carried;
                tokens.replace_all(earned);
                settings.write_tokens(&tokens, response.headers_mut());
            }
            Ok(response)
        })
    }
}

impl Settings {
    fn secret(&self) -> Option<&[u8]> {
        self.databases.first().and_then(|db| db.token_secret())
    }

    fn lifetime(&self) -> Duration {
        self.databases
            .iter()
            .map(ReplicatedDb::token_lifetime)
            .min()
            .unwrap_or_default()
    }

    /// The tokens the request carries (header first, then cookie), or why it is refused.
    fn read_tokens(&self, headers: &HeaderMap) -> Result<Tokens, TokenError> {
        let Some(secret) = self.secret() else {
            return Ok(Tokens::default());
        };
        let mut texts: Vec<&str> = headers
            .get_all(self.header.as_str())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        texts.extend(cookies(headers, &self.cookie));
        let mut tokens = Tokens::default();
        for text in texts.into_iter().take(MAX_DATABASES) {
            let (read, refused) = Tokens::decode(text, secret, self.lifetime());
            for why in &refused {
                tracing::debug!(error = %why, "consistency token not honoured");
            }
            let bad = refused.iter().find(|why| **why != TokenError::Expired);
            if let (Some(why), BadTokens::Refuse) = (bad, self.bad_tokens) {
                return Err(why.clone());
            }
            tokens.merge_all(read);
        }
        Ok(tokens)
    }

    /// Whether this node holds every commit `tokens` name for its databases, within the
    /// wait bound.
    async fn holds(&self, tokens: &Tokens) -> bool {
        let waits = self.databases.iter().map(|db| db.wait_for_tokens(tokens));
        match tokio::time::timeout(self.wait, join_all(waits)).await {
            Ok(results) => results.iter().all(Result::is_ok),
            Err(_) => false,
        }
    }

    /// Puts `tokens` on the response: the header, and a cookie for the whole site.
    fn write_tokens(&self, tokens: &Tokens, headers: &mut HeaderMap) {
        let Some(secret) = self.secret() else {
            return;
        };
        let value = tokens.encode(secret);
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        let cookie = format!(
            "{}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
            self.cookie,
            self.lifetime().as_secs()
        );
        if let (Ok(name), Ok(v)) = (
            axum::http::HeaderName::try_from(self.header.as_str()),
            HeaderValue::try_from(value),
        ) {
            headers.insert(name, v);
        }
        if let Ok(c) = HeaderValue::try_from(cookie) {
            headers.append(header::SET_COOKIE, c);
        }
    }
}

/// The values of cookie `name` in the request's `Cookie` headers.
fn cookies<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name && v.len() <= MAX_TOKEN_LEN * MAX_DATABASES).then_some(v)
        })
}
