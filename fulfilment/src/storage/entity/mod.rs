//! sea-orm entities, one per table.

pub mod checkout_attempts;
pub mod entitlements;
pub mod order_changes;
pub mod orders;
pub mod payment_events;
pub mod provider_customers;
