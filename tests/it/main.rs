//! Integration tests: each test starts a real hookd (see [`helpers::TestApp`]) and drives
//! its HTTP API the way a Svix client would.

mod applications;
mod auth;
mod event_types;
mod helpers;
mod public;
