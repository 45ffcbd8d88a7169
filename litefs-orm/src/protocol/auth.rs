//! Shared-secret authentication of forwarded writes, both ways: HMAC-SHA256 over the
//! request, a timestamp against stale replays, a nonce against fresh ones; and HMAC-SHA256
//! over the answer, bound to the request's nonce, so that no one without the secret can make
//! a write that never happened look committed (or one that did look refused). Constant-time
//! checks throughout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Header carrying the request's Unix time in milliseconds.
pub const TIMESTAMP_HEADER: &str = "x-litefs-orm-timestamp";
/// Header carrying a random request nonce (hex).
pub const NONCE_HEADER: &str = "x-litefs-orm-nonce";
/// Header carrying the hex HMAC-SHA256 signature.
pub const SIGNATURE_HEADER: &str = "x-litefs-orm-signature";
/// Header of an answer carrying its hex HMAC-SHA256 signature, bound to the request's nonce
/// ([`sign_answer`]).
pub const ANSWER_SIGNATURE_HEADER: &str = "x-litefs-orm-answer-signature";

/// Fewest characters of a shared secret.
pub const MIN_SECRET_LEN: usize = 16;

/// The cluster's shared secret: at least [`MIN_SECRET_LEN`] characters, never shown by
/// `Debug`.
///
/// ```
/// use litefs_orm::auth::Secret;
/// assert!(Secret::new("short").is_err());
/// let secret = Secret::new("a long random shared secret").unwrap();
/// assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
/// ```
#[derive(Clone)]
pub struct Secret(Arc<[u8]>);

impl Secret {
    /// A secret of at least [`MIN_SECRET_LEN`] characters; shorter (or empty) is a
    /// [`Error::Config`](crate::Error::Config) naming `LITEFS_ORM_SECRET`.
    pub fn new(secret: &str) -> crate::Result<Secret> {
        let len = secret.chars().count();
        if len < MIN_SECRET_LEN {
            return Err(crate::Error::Config(format!(
                "the RPC secret (LITEFS_ORM_SECRET) must be at least {MIN_SECRET_LEN} characters, \
                 the same on every node; this one has {len}"
            )));
        }
        Ok(Secret(secret.as_bytes().into()))
    }

    /// The secret's bytes, to sign with.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The three authentication headers of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// Unix time in milliseconds.
    pub timestamp_ms: u64,
    /// Random, unique per request.
    pub nonce: String,
    /// Hex HMAC-SHA256.
    pub signature: String,
}

fn mac(secret: &[u8], timestamp_ms: u64, nonce: &str, path: &str, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    // Each field is length-delimited by a newline the fields cannot contain.
    mac.update(format!("litefs-orm/1\n{timestamp_ms}\n{nonce}\n{path}\n").as_bytes());
    mac.update(body);
    mac
}

fn answer_mac(secret: &[u8], nonce: &str, status: u16, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(format!("litefs-orm/1 answer\n{nonce}\n{status}\n").as_bytes());
    mac.update(body);
    mac
}

/// Signs an answer: its status and body, bound to the nonce of the request it answers, so
/// it cannot be replayed as the answer to another request.
pub fn sign_answer(secret: &[u8], request_nonce: &str, status: u16, body: &[u8]) -> String {
    hex::encode(
        answer_mac(secret, request_nonce, status, body)
            .finalize()
            .into_bytes(),
    )
}

/// Checks an answer's signature ([`sign_answer`]) against the request's nonce.
pub fn verify_answer(
    secret: &[u8],
    request_nonce: &str,
    status: u16,
    body: &[u8],
    signature: &str,
) -> Result<(), AuthError> {
    let expected = hex::decode(signature).map_err(|_| AuthError::BadSignature)?;
    answer_mac(secret, request_nonce, status, body)
        .verify_slice(&expected)
        .map_err(|_| AuthError::BadSignature)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Signs a request body for `path`.
pub fn sign(secret: &[u8], path: &str, body: &[u8]) -> Signature {
    let timestamp_ms = now_ms();
    let nonce = hex::encode(rand::random::<[u8; 16]>());
    let signature = hex::encode(
        mac(secret, timestamp_ms, &nonce, path, body)
            .finalize()
            .into_bytes(),
    );
    Signature {
        timestamp_ms,
        nonce,
        signature,
    }
}

/// Why a request's authentication was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// A header is missing or unreadable.
    #[error("missing or malformed {0} header")]
    Missing(&'static str),
    /// The timestamp is too far from this node's clock.
    #[error("request timestamp is {0:?} away from this node's clock")]
    Stale(Duration),
    /// The signature does not match the body.
    #[error("signature does not match the request")]
    BadSignature,
    /// The nonce was already used inside the freshness window.
    #[error("request was already received (replay)")]
    Replayed,
    /// This node has no secret, so it accepts no forwarded write.
    #[error("this node has no RPC secret configured")]
    NoSecret,
}

/// Checks signatures and remembers recent nonces.
pub struct Verifier {
    secret: Option<Secret>,
    max_skew: Duration,
    seen: Mutex<Seen>,
}

/// Nonces seen inside the freshness window, and the size at which to sweep expired ones.
#[derive(Debug)]
struct Seen {
    nonces: HashMap<String, u64>,
    sweep_at: usize,
}

/// The least size at which expired nonces are swept; the threshold then doubles with what
/// is still fresh, so a sweep costs O(1) per request amortized.
const SWEEP_AT: usize = 4096;

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("secret", &self.secret)
            .field("max_skew", &self.max_skew)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier for `secret`; `None` refuses everything. A secret shorter than
    /// [`MIN_SECRET_LEN`] is refused.
    ///
    /// ```
    /// use std::time::Duration;
    /// use litefs_orm::auth::Verifier;
    /// assert!(Verifier::new(Some(""), Duration::from_secs(30)).is_err());
    /// let v = Verifier::new(Some("a long random shared secret"), Duration::from_secs(30)).unwrap();
    /// assert!(!format!("{v:?}").contains("shared secret"));
    /// ```
    pub fn new(secret: Option<&str>, max_skew: Duration) -> crate::Result<Self> {
        Ok(Verifier {
            secret: secret.map(Secret::new).transpose()?,
            max_skew,
            seen: Mutex::new(Seen {
                nonces: HashMap::new(),
                sweep_at: SWEEP_AT,
            }),
        })
    }

    /// What can be checked before the body is read: this node has a secret, and the
    /// request's timestamp is within the clock-skew window.
    pub fn check_fresh(&self, sig: &Signature) -> Result<(), AuthError> {
        self.secret.as_ref().ok_or(AuthError::NoSecret)?;
        let skew = Duration::from_millis(now_ms().abs_diff(sig.timestamp_ms));
        if skew > self.max_skew {
            return Err(AuthError::Stale(skew));
        }
        Ok(())
    }

    /// Signs this node's answer to the request with nonce `request_nonce`; `None` when the
    /// node has no secret.
    pub fn sign_answer(&self, request_nonce: &str, status: u16, body: &[u8]) -> Option<String> {
        let secret = self.secret.as_ref()?;
        Some(sign_answer(secret.expose(), request_nonce, status, body))
    }

    /// Verifies one request; on success its nonce can't be used again.
    pub fn verify(&self, sig: &Signature, path: &str, body: &[u8]) -> Result<(), AuthError> {
        self.check_fresh(sig)?;
        let secret = self.secret.as_ref().ok_or(AuthError::NoSecret)?.expose();
        let now = now_ms();
        let expected = hex::decode(&sig.signature).map_err(|_| AuthError::BadSignature)?;
        mac(secret, sig.timestamp_ms, &sig.nonce, path, body)
            .verify_slice(&expected)
            .map_err(|_| AuthError::BadSignature)?;
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.nonces.len() >= seen.sweep_at {
            let window = self.max_skew.as_millis() as u64;
            seen.nonces.retain(|_, ts| now.abs_diff(*ts) <= window);
            seen.sweep_at = (seen.nonces.len() * 2).max(SWEEP_AT);
        }
        if seen
            .nonces
            .insert(sig.nonce.clone(), sig.timestamp_ms)
            .is_some()
        {
            return Err(AuthError::Replayed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123";

    fn verifier() -> Verifier {
        Verifier::new(Some("0123456789abcdef0123"), Duration::from_secs(30)).unwrap()
    }

    #[test]
    fn a_signed_request_verifies() {
        let sig = sign(SECRET, "/p", b"{}");
        verifier().verify(&sig, "/p", b"{}").unwrap();
    }

    #[test]
    fn a_tampered_body_is_refused() {
        let sig = sign(SECRET, "/p", b"{\"a\":1}");
        assert_eq!(
            verifier().verify(&sig, "/p", b"{\"a\":2}"),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn another_secret_is_refused() {
        let sig = sign(b"another secret of some length", "/p", b"{}");
        assert_eq!(
            verifier().verify(&sig, "/p", b"{}"),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn a_stale_timestamp_is_refused() {
        let mut sig = sign(SECRET, "/p", b"{}");
        sig.timestamp_ms -= 60_000;
        sig.signature = hex::encode(
            mac(SECRET, sig.timestamp_ms, &sig.nonce, "/p", b"{}")
                .finalize()
                .into_bytes(),
        );
        assert!(matches!(
            verifier().verify(&sig, "/p", b"{}"),
            Err(AuthError::Stale(_))
        ));
    }

    #[test]
    fn a_replayed_nonce_is_refused() {
        let v = verifier();
        let sig = sign(SECRET, "/p", b"{}");
        v.verify(&sig, "/p", b"{}").unwrap();
        assert_eq!(v.verify(&sig, "/p", b"{}"), Err(AuthError::Replayed));
    }

    #[test]
    fn no_secret_refuses_everything() {
        let sig = sign(SECRET, "/p", b"{}");
        let v = Verifier::new(None, Duration::from_secs(30)).unwrap();
        assert_eq!(v.verify(&sig, "/p", b"{}"), Err(AuthError::NoSecret));
    }

    #[test]
    fn an_empty_or_short_secret_is_refused() {
        for short in ["", "fifteen chars.."] {
            let e = Verifier::new(Some(short), Duration::from_secs(30)).unwrap_err();
            assert!(e.to_string().contains("LITEFS_ORM_SECRET"), "{e}");
        }
    }

    #[test]
    fn debug_does_not_show_the_secret() {
        assert!(!format!("{:?}", verifier()).contains("0123456789"));
    }

    #[test]
    fn a_signed_answer_verifies_against_its_request_nonce() {
        let sig = sign_answer(SECRET, "n1", 200, b"{}");
        verify_answer(SECRET, "n1", 200, b"{}", &sig).unwrap();
    }

    #[test]
    fn an_answer_signature_does_not_fit_another_request() {
        let sig = sign_answer(SECRET, "n1", 200, b"{}");
        assert_eq!(
            verify_answer(SECRET, "n2", 200, b"{}", &sig),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn an_answer_with_another_status_or_body_is_refused() {
        let sig = sign_answer(SECRET, "n1", 200, b"{\"txid\":5}");
        assert!(verify_answer(SECRET, "n1", 409, b"{\"txid\":5}", &sig).is_err());
        assert!(verify_answer(SECRET, "n1", 200, b"{\"txid\":0}", &sig).is_err());
    }
}
