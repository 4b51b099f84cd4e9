//! Fulfil's webhook adapter: receives provider webhooks over HTTP, verifies
//! them against the raw body, turns them into provider-neutral payment
//! events, and records them with the fulfilment service.
//!
//! - [`verify`]: one module per signature scheme (`verify::stripe`, …).
//! - [`normalize`]: one module per provider payload format.
//! - [`secret`]: secrets that never print.

pub mod normalize;
pub mod secret;
pub mod verify;
