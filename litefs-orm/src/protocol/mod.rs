//! What both sides of the wire speak: the versioned wire format and request signing.

pub mod auth;
pub mod wire;
