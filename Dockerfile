# syntax=docker/dockerfile:1
#
# One image, two binaries: /usr/local/bin/fulfilment and /usr/local/bin/adapter.
#
#   docker build -t fulfil:dev .
#
# The builder matches the workspace toolchain (Rust 1.95 on Debian bookworm);
# the runtime is distroless "cc" on the same Debian release (glibc, libgcc,
# CA certificates; no shell, no package manager), running as uid 65532.
# The protos are compiled by protox inside the build, so no protoc is needed.

ARG RUST_VERSION=1.95.0

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# The cache mounts keep the crate registry and the target directory between
# builds; the binaries are copied out of the cached target in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p fulfilment -p adapter \
 && install -D -m 0755 target/release/fulfilment /out/fulfilment \
 && install -D -m 0755 target/release/adapter /out/adapter

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/fulfilment /out/adapter /usr/local/bin/
# 65532 is distroless's "nonroot"; Kubernetes checks runAsNonRoot against it.
USER 65532:65532
# fulfilment: 50051 gRPC API, 50052 payment-event ingest, 9090 ops
# adapter:    8080 webhooks,   9090 ops
EXPOSE 50051 50052 8080 9090
ENTRYPOINT ["/usr/local/bin/fulfilment"]
CMD ["serve"]
