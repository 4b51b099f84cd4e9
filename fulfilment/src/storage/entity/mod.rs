//! sea-orm entities, one per table.

pub mod order_changes;
pub mod orders;
