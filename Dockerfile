# One image for the whole suite: marketplace, recommendations, users and gateway, and the loadgen
# that the kind overlay runs against them.
#
# One executable, `bookstore`, holds all five binaries, with a link per name
# (`/usr/local/bin/gateway` -> `bookstore`): the code they share (tokio, tonic, hyper, prost, the
# telemetry) is stored once, not five times. Every Deployment picks its binary with `command:`
# (`["/usr/local/bin/gateway"]`), so the image tag is the same everywhere and the suite can never
# run a mixed set of versions. The image has no ENTRYPOINT on purpose: `docker run IMAGE
# marketplace` and a Kubernetes `command:` read the same.
#
# Build it (needs BuildKit: Docker 23+ uses it by default, older clients set DOCKER_BUILDKIT=1):
#   docker build -t bookstore:dev .                   # compiles inside the builder stage
#   make images PREBUILT=1                            # reuses `cargo build --release -p bookstore`
# The second form passes `--build-arg BINARIES=prebuilt` with a small context directory holding
# only target/release/bookstore and its links (the repository's .dockerignore keeps target/ out of
# the normal context), so the Rust image is never needed. It exists for machines that cannot pull
# the Rust image and for a fast inner loop; see docs/deploy.md. The builder stage compiles the
# `dist` profile (fat LTO: smaller); PREBUILT copies the `release` profile's, stripped.
#
# The runtime image is `scratch` plus exactly what the executable loads (`ldd`: the C library,
# libm, libgcc_s and the dynamic loader), copied from RUNTIME_IMAGE, which must be the Debian
# release the executable was linked on: no shell, no package manager, no CA bundle (all traffic
# is in-cluster plaintext gRPC/HTTP), no writable filesystem (databases are PostgreSQL in
# Kubernetes). Host names resolve through glibc's built-in DNS and files lookups.

ARG RUST_IMAGE=rust:1.95.0-slim-bookworm
ARG RUNTIME_IMAGE=debian:12.15-slim
# `builder` (compile here) or `prebuilt` (copy from the context's target/release/).
ARG BINARIES=builder

# ---- skeleton: the workspace with every .rs file replaced by a stub --------------------------
# Its output depends only on the manifests and the lock file, so the dependency layer below is
# reused from cache whenever only source code changed (the cargo-chef idea, with no extra tool).
FROM ${RUST_IMAGE} AS skeleton
WORKDIR /src
COPY . .
# (`find` replaces every `{}` in its arguments, hence the braces of `fn main() {}` in octal.)
RUN set -eu; \
    find . -name '*.rs' -path './*/src/lib.rs' -exec sh -c ': > "$1"' _ {} \; ; \
    find . -name '*.rs' ! -path './*/src/lib.rs' -exec sh -c 'printf "fn main() \173\175\n" > "$1"' _ {} \; ; \
    find . -type f ! -name '*.rs' ! -name 'Cargo.toml' ! -name 'Cargo.lock' -delete; \
    find . -type d -empty -delete

# ---- builder: dependencies first (cached), then the workspace ------------------------------
FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY --from=skeleton /src/ ./
RUN cargo build --profile dist --locked -p bookstore
COPY . .
# COPY keeps the files' old mtimes; touch them so cargo rebuilds the real crates over the stubs.
RUN find . -name '*.rs' -not -path './target/*' -exec touch {} + \
    && cargo build --profile dist --locked -p bookstore \
    && mkdir -p /out \
    && cp target/dist/bookstore /out/ \
    && for name in marketplace recommendations users gateway loadgen; do ln -s bookstore "/out/$name"; done

# ---- prebuilt: compiled outside Docker (context = a dir holding out/bookstore and its links) ---
FROM scratch AS prebuilt
COPY out/ /out/

FROM ${BINARIES} AS binaries

# ---- libs: what the executable loads, and nothing else ------------------------------------------
FROM ${RUNTIME_IMAGE} AS libs
COPY --from=binaries /out/bookstore /bookstore
RUN set -eu; mkdir -p /rootfs/tmp; \
    for lib in $(ldd /bookstore | grep -o '/[^ ]*'); do cp --parents -L "$lib" /rootfs/; done

# ---- runtime -----------------------------------------------------------------------------------
FROM scratch AS runtime
LABEL org.opencontainers.image.title="bookstore" \
      org.opencontainers.image.description="Bookstore gRPC services and gateway (marketplace, recommendations, users, gateway)" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0"
COPY --from=libs /rootfs/ /
COPY --from=binaries --chmod=0555 /out/ /usr/local/bin/
# A numeric, non-root user with no entry in /etc/passwd: Kubernetes can check runAsNonRoot
# against a number, and the process owns nothing in the image (read-only root filesystem).
USER 10001:10001
WORKDIR /tmp
# Containers bind every interface; Kubernetes manifests set the same values explicitly.
# GLIBC_TUNABLES: glibc's per-thread cache keeps 64 freed blocks of each size instead of 7 (see
# docs/decisions/005-allocator.md): 3-6% less CPU per request, a few MiB more under load.
ENV LOG_FORMAT=json \
    RUST_LOG=info \
    GLIBC_TUNABLES=glibc.malloc.tcache_count=64
EXPOSE 8080 9090 9091 9092 9093 50051 50052 50053
CMD ["/usr/local/bin/gateway", "--help"]
