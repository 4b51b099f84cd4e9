//! The gRPC API: services, message conversions, and error mapping.

pub mod convert;
mod order_service;
pub mod page_token;
pub mod status;

pub use order_service::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, OrderApi};
