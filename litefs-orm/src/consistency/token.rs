//! Consistency tokens: a commit a client has seen, in a compact signed string, so that any
//! node can wait until its replica holds that commit before it answers the client again.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The version tag of a token that names its commit's run.
const VERSION: &str = "2";
/// The version tag of a token without a run (from a primary older than runs).
const VERSION_NO_RUN: &str = "1";
/// Bytes of the HMAC kept in a token: 128 bits.
const SIG_BYTES: usize = 16;
/// Longest token string accepted (the parser reads no further).
pub const MAX_TOKEN_LEN: usize = 512;
/// Most databases' tokens one [`Tokens`] carries.
pub const MAX_DATABASES: usize = 8;

/// A commit on one database: its TXID, and the idempotency key the primary recorded in the
/// same transaction with the run (one execution of the call) that committed it. A node holds
/// the commit when its replica is at that TXID or later **and** holds that key's record of
/// that run — which stays true across failovers, where a replica may hold TXIDs of an
/// abandoned history that do not contain the commit, or even a record of the same key that
/// an abandoned run wrote.
///
/// Tokens are signed with the cluster's secret, name their database, and expire: a node
/// ignores (or refuses) one it cannot verify.
///
/// ```
/// use litefs_orm::consistency::Token;
/// let secret = b"a long random shared secret";
/// let token = Token::new("app.db", 42, "0193a1b2c3d4e5f60718293a");
/// let text = token.encode(secret);
/// let back = Token::decode(&text, secret, std::time::Duration::from_secs(60)).unwrap();
/// assert_eq!(back.txid(), 42);
/// assert_eq!(back.database(), "app.db");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    database: String,
    txid: u64,
    key: String,
    run: Option<String>,
    issued_ms: u64,
}

/// Why a token string was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a token of this format.
    #[error("malformed consistency token")]
    Malformed,
    /// Signed with another secret (another cluster), or altered.
    #[error("consistency token with a bad signature")]
    BadSignature,
    /// Older than the token lifetime.
    #[error("expired consistency token")]
    Expired,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn mac(secret: &[u8], payload: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(b"litefs-orm/1 token\n");
    mac.update(payload.as_bytes());
    mac
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Token {
    /// The commit at `txid` on `database` (its file name in the mount), proven by the
    /// record of idempotency key `key`; issued now.
    pub fn new(database: impl Into<String>, txid: u64, key: impl Into<String>) -> Token {
        Token {
            database: database.into(),
            txid,
            key: key.into(),
            run: None,
            issued_ms: now_ms(),
        }
    }

    /// The same commit, naming the run that committed it (hex, as the primary answers it).
    ///
    /// ```
    /// use litefs_orm::consistency::Token;
    /// let token = Token::new("app.db", 42, "0193a1b2c3d4e5f60718293a").with_run("9f86d081884c7d65");
    /// assert_eq!(token.run(), Some("9f86d081884c7d65"));
    /// ```
    pub fn with_run(mut self, run: impl Into<String>) -> Token {
        self.run = Some(run.into());
        self
    }

    /// The database's file name.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The commit's TXID.
    pub fn txid(&self) -> u64 {
        self.txid
    }

    /// The idempotency key recorded with the commit.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The same token as issued at `issued_ms` (Unix milliseconds) instead of now: for
    /// tests of expiry, and for tokens kept elsewhere and made again.
    ///
    /// ```
    /// use std::time::Duration;
    /// use litefs_orm::consistency::{Token, TokenError};
    /// let old = Token::new("app.db", 42, "aa").with_issued_ms(0);
    /// let text = old.encode(b"a long random shared secret");
    /// let read = Token::decode(&text, b"a long random shared secret", Duration::from_secs(60));
    /// assert_eq!(read, Err(TokenError::Expired));
    /// ```
    pub fn with_issued_ms(mut self, issued_ms: u64) -> Token {
        self.issued_ms = issued_ms;
        self
    }

    /// The run that committed it: `None` for a commit of a primary older than runs, whose
    /// key's record alone proves it.
    pub fn run(&self) -> Option<&str> {
        self.run.as_deref()
    }

    /// When the token was issued (Unix milliseconds).
    pub fn issued_ms(&self) -> u64 {
        self.issued_ms
    }

    /// Whether `self` is later than `other` (on the same database): a higher TXID, or the
    /// same TXID issued later.
    pub fn is_later_than(&self, other: &Token) -> bool {
        (self.txid, self.issued_ms) > (other.txid, other.issued_ms)
    }

    /// The token as a compact string, signed with `secret`:
    /// `2.<db>.<txid>.<key>.<run>.<issued>.<sig>` in hex (`1.<db>.<txid>.<key>.<issued>.<sig>`
    /// without a run), safe in a cookie or a header.
    pub fn encode(&self, secret: &[u8]) -> String {
        let (db, issued) = (hex::encode(self.database.as_bytes()), self.issued_ms);
        let payload = match &self.run {
            Some(run) => format!(
                "{VERSION}.{db}.{:x}.{}.{run}.{issued:x}",
                self.txid, self.key
            ),
            None => format!(
                "{VERSION_NO_RUN}.{db}.{:x}.{}.{issued:x}",
                self.txid, self.key
            ),
        };
        let sig = mac(secret, &payload).finalize().into_bytes();
        format!("{payload}.{}", hex::encode(&sig[..SIG_BYTES]))
    }

    /// Reads a token string, checking its signature with `secret` and that it is younger
    /// than `lifetime`.
    pub fn decode(text: &str, secret: &[u8], lifetime: Duration) -> Result<Token, TokenError> {
        if text.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let (payload, sig) = text.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let parts: Vec<&str> = payload.split('.').collect();
        let (db, txid, key, run, issued) = match parts[..] {
            [VERSION, db, txid, key, run, issued] => (db, txid, key, Some(run), issued),
            [VERSION_NO_RUN, db, txid, key, issued] => (db, txid, key, None, issued),
            _ => return Err(TokenError::Malformed),
        };
        let fields = [db, txid, key, issued, sig].into_iter().chain(run);
        if !fields.into_iter().all(is_hex) {
            return Err(TokenError::Malformed);
        }
        let sig = hex::decode(sig).map_err(|_| TokenError::Malformed)?;
        if sig.len() != SIG_BYTES {
            return Err(TokenError::Malformed);
        }
        mac(secret, payload)
            .verify_truncated_left(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        let database = String::from_utf8(hex::decode(db).map_err(|_| TokenError::Malformed)?)
            .map_err(|_| TokenError::Malformed)?;
        let txid = u64::from_str_radix(txid, 16).map_err(|_| TokenError::Malformed)?;
        let issued_ms = u64::from_str_radix(issued, 16).map_err(|_| TokenError::Malformed)?;
        let age = Duration::from_millis(now_ms().saturating_sub(issued_ms));
        if age > lifetime {
            return Err(TokenError::Expired);
        }
        Ok(Token {
            database,
            txid,
            key: key.to_owned(),
            run: run.map(str::to_owned),
            issued_ms,
        })
    }
}

/// The tokens of a session, at most one per database (the latest): what a cookie or a
/// header carries, several databases' tokens together.
///
/// ```
/// use litefs_orm::consistency::{Token, Tokens};
/// let mut tokens = Tokens::default();
/// tokens.merge(Token::new("app.db", 7, "aa"));
/// tokens.merge(Token::new("app.db", 5, "bb"));
/// tokens.merge(Token::new("queue.db", 3, "cc"));
/// assert_eq!(tokens.get("app.db").unwrap().txid(), 7);
/// assert_eq!(tokens.len(), 2);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tokens(Vec<Token>);

impl Tokens {
    /// Keeps `token` if it is the first for its database or later than the one held.
    pub fn merge(&mut self, token: Token) {
        let full = self.0.len() >= MAX_DATABASES;
        match self.0.iter_mut().find(|t| t.database == token.database) {
            Some(held) if token.is_later_than(held) => *held = token,
            Some(_) => {}
            None if !full => self.0.push(token),
            None => {}
        }
    }

    /// Merges every token of `other`.
    pub fn merge_all(&mut self, other: Tokens) {
        for token in other.0 {
            self.merge(token);
        }
    }

    /// Puts `token` in place of the one held for its database, whatever their TXIDs: it
    /// names a later write. After a failover onto a history that lost the held commit, the
    /// later write's TXID can be the lower one, and only it can still be held anywhere.
    ///
    /// ```
    /// use litefs_orm::consistency::{Token, Tokens};
    /// let mut tokens = Tokens::default();
    /// tokens.replace(Token::new("app.db", 7, "aa"));
    /// tokens.replace(Token::new("app.db", 5, "bb"));
    /// assert_eq!(tokens.get("app.db").unwrap().key(), "bb");
    /// ```
    pub fn replace(&mut self, token: Token) {
        let full = self.0.len() >= MAX_DATABASES;
        match self.0.iter_mut().find(|t| t.database == token.database) {
            Some(held) => *held = token,
            None if !full => self.0.push(token),
            None => {}
        }
    }

    /// [`replace`](Self::replace)s with every token of `later`: the tokens a request earned
    /// replace the ones it carried.
    pub fn replace_all(&mut self, later: Tokens) {
        for token in later.0 {
            self.replace(token);
        }
    }

    /// The token for `database`.
    pub fn get(&self, database: &str) -> Option<&Token> {
        self.0.iter().find(|t| t.database == database)
    }

    /// The tokens, one per database.
    pub fn iter(&self) -> impl Iterator<Item = &Token> {
        self.0.iter()
    }

    /// How many databases have a token.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no database has one.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// All tokens as one string (each [`Token::encode`]d, joined by `~`).
    pub fn encode(&self, secret: &[u8]) -> String {
        let parts: Vec<String> = self.0.iter().map(|t| t.encode(secret)).collect();
        parts.join("~")
    }

    /// Reads a string of [`Tokens::encode`]: the tokens that verify, and why each other one
    /// did not.
    pub fn decode(text: &str, secret: &[u8], lifetime: Duration) -> (Tokens, Vec<TokenError>) {
        let mut tokens = Tokens::default();
        let mut refused = Vec::new();
        for part in text
            .split('~')
            .take(MAX_DATABASES)
            .filter(|p| !p.is_empty())
        {
            match Token::decode(part.trim(), secret, lifetime) {
                Ok(token) => tokens.merge(token),
                Err(e) => refused.push(e),
            }
        }
        (tokens, refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a long random shared secret";
    const MINUTE: Duration = Duration::from_secs(60);

    fn token() -> Token {
        Token::new("app.db", 0x1234, "0193a1b2c3d4e5f6")
    }

    #[test]
    fn a_token_reads_back_as_it_was() {
        let t = token();
        assert_eq!(Token::decode(&t.encode(SECRET), SECRET, MINUTE), Ok(t));
    }

    #[test]
    fn a_token_with_a_run_reads_back_with_it() {
        let t = token().with_run("00ff00ff00ff00ff");
        let back = Token::decode(&t.encode(SECRET), SECRET, MINUTE).unwrap();
        assert_eq!(back.run(), Some("00ff00ff00ff00ff"));
        assert_eq!(back, t);
    }

    #[test]
    fn a_token_whose_run_was_altered_has_a_bad_signature() {
        let text = token().with_run("00ff00ff00ff00ff").encode(SECRET);
        let altered = text.replacen(".00ff00ff00ff00ff.", ".11ff00ff00ff00ff.", 1);
        assert_eq!(
            Token::decode(&altered, SECRET, MINUTE),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn an_earned_token_replaces_a_carried_one_with_a_higher_txid() {
        let mut carried = Tokens::default();
        carried.merge(Token::new("app.db", 9, "aa"));
        let mut earned = Tokens::default();
        earned.merge(Token::new("app.db", 4, "bb"));
        carried.replace_all(earned);
        assert_eq!(carried.get("app.db").unwrap().key(), "bb");
    }

    #[test]
    fn a_token_of_another_cluster_has_a_bad_signature() {
        let text = token().encode(b"another cluster's secret");
        assert_eq!(
            Token::decode(&text, SECRET, MINUTE),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn an_altered_token_has_a_bad_signature() {
        let text = token().encode(SECRET).replacen(".1234.", ".9999.", 1);
        assert_eq!(
            Token::decode(&text, SECRET, MINUTE),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn an_old_token_is_expired() {
        let mut t = token();
        t.issued_ms -= 120_000;
        assert_eq!(
            Token::decode(&t.encode(SECRET), SECRET, MINUTE),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn garbage_is_malformed() {
        for text in [
            "",
            ".",
            "1.2.3",
            "x.y.z.w.v.u",
            &"a".repeat(600),
            "1.zz.1.aa.1.00",
        ] {
            assert_eq!(
                Token::decode(text, SECRET, MINUTE),
                Err(TokenError::Malformed),
                "{text:?}"
            );
        }
    }

    #[test]
    fn the_later_token_of_a_database_is_kept() {
        let mut tokens = Tokens::default();
        tokens.merge(Token::new("app.db", 9, "aa"));
        tokens.merge(Token::new("app.db", 8, "bb"));
        assert_eq!(tokens.get("app.db").unwrap().key(), "aa");
        tokens.merge(Token::new("app.db", 10, "cc"));
        assert_eq!(tokens.get("app.db").unwrap().key(), "cc");
    }

    #[test]
    fn several_databases_ride_together() {
        let mut tokens = Tokens::default();
        tokens.merge(Token::new("app.db", 9, "aa"));
        tokens.merge(Token::new("queue.db", 2, "bb"));
        let (back, refused) = Tokens::decode(&tokens.encode(SECRET), SECRET, MINUTE);
        assert_eq!(back, tokens);
        assert!(refused.is_empty());
    }

    #[test]
    fn a_bad_token_among_good_ones_is_set_aside() {
        let good = token().encode(SECRET);
        let text = format!("{good}~garbage");
        let (back, refused) = Tokens::decode(&text, SECRET, MINUTE);
        assert_eq!(back.len(), 1);
        assert_eq!(refused, vec![TokenError::Malformed]);
    }
}
