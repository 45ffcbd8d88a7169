//! What both sides of the wire speak: the versioned wire format, and the signing of requests
//! and answers.

pub mod auth;
mod field_state;
pub mod wire;
