//! What both sides of the wire speak: the versioned wire format, the signing of requests
//! and answers, and the lines of a replica's position report.

pub mod auth;
mod field_state;
pub mod positions;
pub mod wire;
