//! Sends signed requests to the primary: the [`Transport`] trait and its HTTP implementation.

use std::time::Duration;

use bytes::Bytes;

use crate::BoxFut;
use crate::error::{Error, Result};
use crate::protocol::auth::{self, Secret};
use crate::protocol::wire::{ErrorBody, ErrorCode};

/// Carries one JSON request body to the primary's `url` (whose path is signed) and brings
/// back the body of a successful answer within `timeout`; an error answer becomes the
/// matching [`Error`]. The network boundary, so tests and decorators can stand in for HTTP.
pub trait Transport: Send + Sync + 'static {
    /// Sends one request.
    fn send<'a>(
        &'a self,
        url: &'a str,
        body: Bytes,
        timeout: Duration,
    ) -> BoxFut<'a, Result<Bytes>>;
}

/// The HTTP transport: keep-alive connections, signed requests, a deadline per call, and
/// answers trusted only when signed with the same secret for this very request.
#[derive(Clone, Debug)]
pub struct HttpTransport {
    client: reqwest::Client,
    secret: Secret,
}

/// How long connecting to a primary may take: a host that drops packets fails the attempt
/// (as one that never left) in this time rather than at the call's deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

impl HttpTransport {
    /// A transport signing with `secret`, of at least
    /// [`MIN_SECRET_LEN`](auth::MIN_SECRET_LEN) characters.
    ///
    /// ```
    /// use litefs_orm::client::HttpTransport;
    /// assert!(HttpTransport::new("").is_err());
    /// let t = HttpTransport::new("a long random shared secret").unwrap();
    /// assert!(!format!("{t:?}").contains("shared secret"));
    /// ```
    pub fn new(secret: &str) -> Result<Self> {
        let secret = Secret::new(secret)?;
        let client = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(60))
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| Error::Config(format!("building the HTTP client: {e}")))?;
        Ok(HttpTransport { client, secret })
    }

    async fn post(&self, url: &str, body: Bytes, timeout: Duration) -> Result<Bytes> {
        let path = url_path(url);
        let sig = auth::sign(self.secret.expose(), path, &body);
        let sent = self
            .client
            .post(url)
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(auth::TIMESTAMP_HEADER, sig.timestamp_ms.to_string())
            .header(auth::NONCE_HEADER, &sig.nonce)
            .header(auth::SIGNATURE_HEADER, &sig.signature)
            .body(body)
            .send()
            .await;
        let response = sent.map_err(|e| transport_error(url, &e))?;
        let status = response.status();
        let answer_sig = response
            .headers()
            .get(auth::ANSWER_SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(url, &e))?;
        let verified = match &answer_sig {
            None => Err("it carries no signature"),
            Some(s) => {
                auth::verify_answer(self.secret.expose(), &sig.nonce, status.as_u16(), &bytes, s)
                    .map_err(|_| "its signature does not match")
            }
        };
        let error_body = (!status.is_success())
            .then(|| serde_json::from_slice::<ErrorBody>(&bytes).ok())
            .flatten();
        match (verified, status.is_success(), error_body) {
            (Ok(()), true, _) => Ok(bytes),
            (Ok(()), false, Some(err)) => Err(error_from_body(url, err)),
            // Success, or an answer in the endpoint's own words, that the secret did not
            // sign for this request: it cannot say what happened to the write.
            (Err(why), true, _) => Err(unverified(url, status, why, &bytes)),
            (Err(why), false, Some(err)) => {
                Err(unverified(url, status, why, err.message.as_bytes()))
            }
            (_, false, None) => Err(foreign_answer(url, status, &bytes)),
        }
    }
}

/// An answer that looks like the endpoint's but is not signed with this node's secret for
/// this request: forged, altered on the way, or from a primary with another secret (or an
/// older litefs-orm that signs no answers). What it says cannot be trusted either way.
fn unverified(url: &str, status: reqwest::StatusCode, why: &str, said: &[u8]) -> Error {
    let said: String = String::from_utf8_lossy(said).chars().take(200).collect();
    // The endpoint signs no 401 (that would sign for a nonce anyone chose): with secrets
    // that differ, this is what every write meets.
    let hint = if status == reqwest::StatusCode::UNAUTHORIZED {
        "; if the nodes' LITEFS_ORM_SECRET differ, the primary refused the request unread"
    } else {
        ""
    };
    Error::UnverifiedAnswer {
        url: url.to_owned(),
        reason: format!("the {status} answer ({said}) cannot be trusted: {why}{hint}"),
    }
}

/// An error answer that litefs-orm's endpoint did not write (the endpoint signs every
/// answer to an authenticated request): a gateway or proxy between the nodes, or a layer of
/// the primary's app, answered instead. A timeout (408) or a server error (5xx) may come
/// after the endpoint ran the request, so the write's fate is unknown and the call is retried
/// under its idempotency key. Any other status most likely refused the request before it
/// reached the endpoint (a missing route, a body limit) — but an unsigned answer cannot prove
/// it, so it ends the call as [`Error::UnverifiedAnswer`], with what it said and a hint.
fn foreign_answer(url: &str, status: reqwest::StatusCode, body: &[u8]) -> Error {
    let text: String = String::from_utf8_lossy(body).chars().take(200).collect();
    let said = match text.trim() {
        "" => String::new(),
        text => format!(" ({text})"),
    };
    let message = format!("answered {status}, not as litefs-orm's endpoint{said}");
    if status == reqwest::StatusCode::REQUEST_TIMEOUT || status.is_server_error() {
        return Error::Transport {
            url: url.to_owned(),
            message,
            maybe_committed: true,
            attempts: 1,
        };
    }
    let hint = if status == reqwest::StatusCode::NOT_FOUND {
        "; does the primary's app merge `litefs_orm::router(db)` into its Axum router, and does \
         LITEFS_ORM_PRIMARY_URL or LITEFS_ORM_PRIMARY_URLS point at that app (with the prefix, \
         when the router is nested under one)?"
    } else {
        ""
    };
    Error::UnverifiedAnswer {
        url: url.to_owned(),
        reason: format!("{message}, unsigned{hint}"),
    }
}

impl Transport for HttpTransport {
    fn send<'a>(
        &'a self,
        url: &'a str,
        body: Bytes,
        timeout: Duration,
    ) -> BoxFut<'a, Result<Bytes>> {
        Box::pin(self.post(url, body, timeout))
    }
}

/// The transport of a node without a secret (standalone, where every write is local): it
/// sends nothing.
pub(crate) struct NoSecret;

impl Transport for NoSecret {
    fn send<'a>(&'a self, url: &'a str, _: Bytes, _: Duration) -> BoxFut<'a, Result<Bytes>> {
        Box::pin(async move {
            Err(Error::Config(format!(
                "cannot forward to {url}: this node has no LITEFS_ORM_SECRET to sign with"
            )))
        })
    }
}

/// The path of an absolute URL: what the signature covers.
fn url_path(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    after_scheme.find('/').map_or("/", |i| &after_scheme[i..])
}

fn transport_error(url: &str, e: &reqwest::Error) -> Error {
    // A failed connect never reached the primary; anything later might have.
    let maybe_committed = !(e.is_connect() || e.is_builder());
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    if e.is_connect() && looks_like_dns(&message) {
        message.push_str(
            "; the primary's hostname does not resolve: map LiteFS hostnames to the apps' \
             URLs with LITEFS_ORM_PRIMARY_URLS (n1=http://10.0.0.1:8080,...) or fix \
             LITEFS_ORM_PRIMARY_URL's template",
        );
    }
    Error::Transport {
        url: url.to_owned(),
        message,
        maybe_committed,
        attempts: 1,
    }
}

/// Whether a connect failure's text is a failed name lookup (hyper's resolver says "dns error";
/// the system's, "failed to lookup address").
fn looks_like_dns(message: &str) -> bool {
    message.contains("dns error") || message.contains("failed to lookup address")
}

/// Turns the primary's error answer into the caller's typed error.
pub(crate) fn error_from_body(url: &str, body: ErrorBody) -> Error {
    match body.code {
        // Not applied, or applied at most once under the call's key: either way, ask again.
        code @ (ErrorCode::Stalled | ErrorCode::Uncertain) => Error::Transport {
            url: url.to_owned(),
            message: format!("the primary answered: {}", body.message),
            maybe_committed: code == ErrorCode::Uncertain,
            attempts: 1,
        },
        ErrorCode::Unauthorized => Error::Unauthorized(body.message),
        ErrorCode::NotPrimary => Error::NotPrimary {
            primary: body.primary,
            hint: "the node asked is no longer the primary; the write was not applied".into(),
        },
        ErrorCode::UnknownEntity => Error::UnknownEntity(body.message),
        ErrorCode::Rejected => match body.db {
            Some(db) => Error::Rejected(db),
            None => Error::Protocol(format!(
                "rejected without a database error: {}",
                body.message
            )),
        },
        ErrorCode::OperationFailed => Error::Operation {
            operation: body.message,
            error: body.error.unwrap_or_default(),
        },
        ErrorCode::UnknownDatabase => Error::Protocol(format!(
            "{}: serve every database's handle with `litefs_orm::router_for`",
            body.message
        )),
        ErrorCode::BadRequest | ErrorCode::TooLarge | ErrorCode::Internal => {
            Error::Protocol(format!(
                "the primary refused the request ({:?}): {}",
                body.code, body.message
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Error, foreign_answer, url_path};
    use reqwest::StatusCode;

    const URL: &str = "http://n1:8080/litefs-orm/v1/write";

    fn maybe_committed(e: &Error) -> Option<bool> {
        match e {
            Error::Transport {
                maybe_committed, ..
            } => Some(*maybe_committed),
            _ => None,
        }
    }

    #[test]
    fn a_gateway_error_leaves_the_write_of_unknown_fate() {
        for status in [502, 503, 504, 500, 408] {
            let status = StatusCode::from_u16(status).unwrap();
            let e = foreign_answer(URL, status, b"upstream request timeout");
            assert_eq!(maybe_committed(&e), Some(true), "{status}: {e}");
            assert!(e.to_string().contains("upstream request timeout"), "{e}");
        }
    }

    #[tokio::test]
    async fn a_hostname_that_does_not_resolve_points_to_the_url_map() {
        let e = reqwest::Client::new()
            .post("http://no-such-node.invalid:8080/")
            .send()
            .await
            .unwrap_err();
        let text = super::transport_error(URL, &e).to_string();
        assert!(text.contains("LITEFS_ORM_PRIMARY_URLS"), "{text}");
    }

    #[test]
    fn a_404_names_the_router_to_merge_and_the_url_tried() {
        let e = foreign_answer(URL, StatusCode::NOT_FOUND, b"");
        let text = e.to_string();
        assert!(text.contains("litefs_orm::router(db)"), "{text}");
        assert!(text.contains(URL), "{text}");
        assert!(!text.trim_end().ends_with(':'), "no dangling colon: {text}");
    }

    #[test]
    fn a_foreign_refusal_cannot_prove_nothing_was_written() {
        for status in [404, 405, 413, 401] {
            let status = StatusCode::from_u16(status).unwrap();
            let e = foreign_answer(URL, status, b"<html>not here</html>");
            assert!(
                matches!(e, Error::UnverifiedAnswer { .. }),
                "{status}: {e:?}"
            );
            assert!(e.may_be_committed());
            assert!(e.to_string().contains("not here"), "{e}");
        }
    }

    #[test]
    fn the_signed_path_is_the_url_path() {
        assert_eq!(
            url_path("http://n1:8080/litefs-orm/v1/write"),
            "/litefs-orm/v1/write"
        );
        assert_eq!(url_path("http://n1:8080"), "/");
    }
}
