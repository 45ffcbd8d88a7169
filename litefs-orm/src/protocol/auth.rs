//! Shared-secret authentication of forwarded writes: HMAC-SHA256 over the request, a
//! timestamp against stale replays, a nonce against fresh ones, constant-time checks.

use std::collections::HashMap;
use std::sync::Mutex;
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
#[derive(Debug)]
pub struct Verifier {
    secret: Option<Vec<u8>>,
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

impl Verifier {
    /// A verifier for `secret`; `None` refuses everything.
    pub fn new(secret: Option<&str>, max_skew: Duration) -> Self {
        Verifier {
            secret: secret.map(|s| s.as_bytes().to_vec()),
            max_skew,
            seen: Mutex::new(Seen {
                nonces: HashMap::new(),
                sweep_at: SWEEP_AT,
            }),
        }
    }

    /// Verifies one request; on success its nonce can't be used again.
    pub fn verify(&self, sig: &Signature, path: &str, body: &[u8]) -> Result<(), AuthError> {
        let secret = self.secret.as_deref().ok_or(AuthError::NoSecret)?;
        let now = now_ms();
        let skew = Duration::from_millis(now.abs_diff(sig.timestamp_ms));
        if skew > self.max_skew {
            return Err(AuthError::Stale(skew));
        }
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
        Verifier::new(Some("0123456789abcdef0123"), Duration::from_secs(30))
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
        let v = Verifier::new(None, Duration::from_secs(30));
        assert_eq!(v.verify(&sig, "/p", b"{}"), Err(AuthError::NoSecret));
    }
}
