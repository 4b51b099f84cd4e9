//! The gRPC API: services, message conversions, and error mapping.

mod checkout_service;
pub mod convert;
mod entitlement_service;
mod fields;
mod order_service;
pub mod page_token;
mod payment_event_service;
pub mod status;

pub use checkout_service::{CheckoutApi, flow_from_proto};
pub use entitlement_service::EntitlementApi;
pub use order_service::OrderApi;
pub use page_token::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
pub use payment_event_service::PaymentEventApi;
