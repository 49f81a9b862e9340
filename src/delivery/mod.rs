//! Delivering messages to endpoints: the dispatcher, the HTTP sender, outcome
//! classification, and the pure pieces they build on: the retry policy ([`policy`]) and the
//! guard against requests to internal networks ([`ssrf`]).

pub mod policy;
pub mod ssrf;
