//! The token parser on arbitrary input: it never panics, and accepts nothing it did not
//! sign.

use std::time::Duration;

use litefs_orm::consistency::{Token, Tokens};
use proptest::prelude::*;

const SECRET: &[u8] = b"a long random shared secret";
const LIFETIME: Duration = Duration::from_secs(60);

proptest! {
    #[test]
    fn arbitrary_text_never_passes_for_a_token(text in ".{0,600}") {
        prop_assert!(Token::decode(&text, SECRET, LIFETIME).is_err());
        let (tokens, _) = Tokens::decode(&text, SECRET, LIFETIME);
        prop_assert!(tokens.is_empty());
    }

    #[test]
    fn a_signed_token_with_any_byte_changed_is_refused(
        txid in any::<u64>(),
        key in "[0-9a-f]{1,40}",
        at in any::<prop::sample::Index>(),
        to in "[0-9a-z.~]",
    ) {
        let text = Token::new("app.db", txid, key).encode(SECRET);
        let i = at.index(text.len());
        let mut changed = text.clone();
        changed.replace_range(i..=i, &to);
        prop_assume!(changed != text);
        prop_assert!(Token::decode(&changed, SECRET, LIFETIME).is_err());
    }

    #[test]
    fn a_signed_token_reads_back(txid in any::<u64>(), key in "[0-9a-f]{1,64}", db in "[a-z._-]{1,30}") {
        let token = Token::new(db, txid, key);
        let back = Token::decode(&token.encode(SECRET), SECRET, LIFETIME).unwrap();
        prop_assert_eq!(back, token);
    }
}
