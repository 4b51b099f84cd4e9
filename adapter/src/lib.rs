//! Fulfil's webhook adapter: receives provider webhooks over HTTP, verifies
//! them against the raw body, turns them into provider-neutral payment
//! events, and records them with the fulfilment service.
//!
//! - [`verify`]: one module per signature scheme (`verify::stripe`, …).
//! - [`normalize`]: one module per provider payload format.
//! - [`source`]: configured sources, each a verifier plus a normaliser.
//! - [`webhook`]: the `POST /webhooks/{source}` handler; [`body`]: reading
//!   its body within limits.
//! - [`fulfilment_client`]: recording events over gRPC, with retries;
//!   [`fulfilment_tls`] and [`token_file`]: its TLS and bearer token.
//! - [`error`]: the one mapping of failures to HTTP responses.
//! - [`service`]: one adapter from options to serving, for `adapter serve`
//!   and `fulfil up`; [`config`], [`server`], [`secret`]: the rest.

pub mod body;
pub mod config;
pub mod error;
pub mod fulfilment_client;
pub mod fulfilment_tls;
pub mod metrics;
pub mod normalize;
pub mod secret;
pub mod server;
pub mod service;
pub mod source;
pub mod token_file;
pub mod verify;
pub mod webhook;
