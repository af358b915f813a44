# syntax=docker/dockerfile:1
# The node-sensor image, built by a container engine. NOT built on the project's machines (they
# have no Docker engine): there `cargo xtask image` writes the equivalent image (the same binary
# and its glibc libraries at the same paths, no shell) as an OCI/docker archive, and the tests run
# that one. docs/deploy.md.

# Build: the stable toolchain for the agent, a pinned nightly for the kernel programs (bpf-linker
# links against that nightly's own LLVM: xtask/src/setup.rs).
ARG RUST_VERSION=1.95
FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
ARG RUST_NIGHTLY=nightly-2026-05-20
# xtask calls `+nightly`: the dated toolchain answers to that name too.
RUN rustup toolchain install "${RUST_NIGHTLY}" --profile minimal --component rust-src \
 && ln -s "${RUSTUP_HOME}/toolchains/${RUST_NIGHTLY}-x86_64-unknown-linux-gnu" \
          "${RUSTUP_HOME}/toolchains/nightly-x86_64-unknown-linux-gnu"
WORKDIR /src
COPY . .
# Installs bpf-linker (against the nightly's libLLVM), builds the kernel programs and the agent.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo xtask build --release \
 && install -D -m 0755 target/release/sensor /out/usr/local/bin/sensor

# Runtime: distroless with glibc and libgcc (what `ldd sensor` lists), no shell, no package
# manager. The DaemonSet runs it read-only with uid 0 and four capabilities.
FROM gcr.io/distroless/cc-debian12
COPY --from=build /out/ /
ENTRYPOINT ["/usr/local/bin/sensor"]
CMD ["run"]
