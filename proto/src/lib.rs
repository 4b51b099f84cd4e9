//! Fulfil's public gRPC contract, package `fulfil.v1`, as generated Rust types,
//! clients and servers.
//!
//! The `.proto` sources live beside this crate in `fulfil/v1/`; they are the
//! contract, this crate is only their Rust rendering, plus what the adapter
//! and the services share about its fields: [`Provider`], the provider names
//! of `PaymentEvent.provider`, and [`Identifier`], what every id must be.

pub mod codec;
pub mod identifier;
mod provider;

pub use identifier::{Identifier, IdentifierError};
pub use provider::Provider;

/// Package `fulfil.v1`: orders, their service, and the adapter's payment event
/// entry point.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("fulfil.v1");
}

/// The encoded `FileDescriptorSet` of every fulfil.v1 file and its imports,
/// for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/fulfil_descriptor.bin"));
