//! Delivering messages to endpoints: the [`dispatcher`] (claims, concurrency, outcomes), the
//! HTTP [`sender`] (signing, timeouts, error classes) and its pooled [`client`], and the pure
//! pieces they build on: the retry policy ([`policy`]), the guard against requests to
//! internal networks ([`ssrf`]), an injectable [`clock`], and the handles of what it
//! measures ([`measure`]).

pub mod client;
pub mod clock;
pub mod dispatcher;
pub mod measure;
pub mod policy;
pub mod sender;
pub mod ssrf;
