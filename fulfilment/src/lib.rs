//! Fulfil's fulfilment service: owns the orders, applies each payment event
//! exactly once, and serves the `fulfil.v1` gRPC API.
//!
//! - [`order`]: the domain (orders, validation, the state machine).
//! - [`payment_event`]: provider events and how they add up on an order.
//! - [`storage`]: SQLite/PostgreSQL persistence with a group-commit writer.
//! - [`stream`]: resumable, gap-free streams of order changes.
//! - [`api`]: gRPC services and the single error-to-status mapping.
//! - [`auth`]: bearer-token authentication and per-call authorization.
//! - [`checkout`]: starting payments at providers (Stripe), the catalogue.
//! - [`server`]: assembling and running the servers (API, ingest, ops);
//!   [`service`]: one process from options to serving, for `fulfilment
//!   serve` and `fulfil up`.
//! - [`metrics`]: Prometheus metrics.

pub mod api;
pub mod auth;
pub mod checkout;
pub mod config;
pub mod entitlement;
pub mod metrics;
pub mod order;
pub mod payment_event;
pub mod server;
pub mod service;
pub mod storage;
pub mod stream;
