//! Compiles the fulfil.v1 protos with protox (pure Rust), so building needs no
//! system `protoc`.

use std::{env, fs, path::PathBuf};

const PROTOS: &[&str] = &[
    "fulfil/v1/order.proto",
    "fulfil/v1/order_service.proto",
    "fulfil/v1/payment_event_service.proto",
    "fulfil/v1/entitlement_service.proto",
    "fulfil/v1/checkout_service.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=fulfil");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    let mut compiler = protox::Compiler::new(["."])?;
    compiler.include_imports(true).include_source_info(true);
    for proto in PROTOS {
        compiler.open_file(proto)?;
    }
    // Server reflection serves this set, imports included, so grpcurl and
    // grpcio clients need no .proto files.
    fs::write(
        out_dir.join("fulfil_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Small per-call encode buffers: watch streams are long-lived.
        .codec_path("crate::codec::CompactCodec")
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
