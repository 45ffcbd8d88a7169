//! The tokens a piece of work earns: every replicated write made inside [`capture`] (on
//! this task) adds its token, so a request handler's writes can travel back to the client.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use super::token::{Token, Tokens};

tokio::task_local! {
    static SESSION: Session;
}

/// The tokens collected so far by one [`capture`].
#[derive(Clone, Default)]
struct Session(Arc<Mutex<Tokens>>);

impl Session {
    fn tokens(&self) -> std::sync::MutexGuard<'_, Tokens> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs `work` and returns, with its output, the tokens of the replicated writes it made
/// on this task (the latest per database: the one that holds every other write of the
/// capture, or — when a failover lost an earlier write — the one that still can be held).
/// Writes made by tasks `work` spawns are not seen. Captures nest: an enclosing capture
/// sees the tokens too.
///
/// ```no_run
/// # async fn run(db: litefs_orm::ReplicatedDb, model: impl litefs_orm::ReplicatedActiveModel) {
/// use litefs_orm::consistency::capture;
/// let (saved, tokens) = capture(model.insert_replicated(&db)).await;
/// // Hand `tokens` to a background job; on any node: `db.wait_for_tokens(&tokens).await`.
/// # }
/// ```
pub async fn capture<F: Future>(work: F) -> (F::Output, Tokens) {
    let session = Session::default();
    let out = SESSION.scope(session.clone(), work).await;
    let tokens = std::mem::take(&mut *session.tokens());
    let _ = SESSION.try_with(|outer| outer.tokens().replace_all(tokens.clone()));
    (out, tokens)
}

/// Whether a [`capture`] is running on this task: only then do local writes on the primary
/// pay for a token (the idempotency record that proves the commit).
pub(crate) fn active() -> bool {
    SESSION.try_with(|_| ()).is_ok()
}

/// The running [`capture`]'s token for `database`, if any.
pub(crate) fn held(database: &str) -> Option<Token> {
    SESSION
        .try_with(|s| s.tokens().get(database).cloned())
        .ok()
        .flatten()
}

/// Makes `token` the running [`capture`]'s token for its database, if a capture runs.
pub(crate) fn replace(token: Token) {
    let _ = SESSION.try_with(|s| s.tokens().replace(token));
}
