# audience as a SageMaker bring-your-own-container image: one binary that trains
# (`docker run IMAGE train`) and serves (`docker run IMAGE serve`).
#
#   docker build -t audience .
#   docker run --rm -v /tmp/opt_ml:/opt/ml audience train
#
# Build stage: Rust, a C++ compiler, CMake >= 3.28 (LightGBM 4.7; bookworm-backports has 3.31) and
# libclang (bindgen) compile LightGBM and audience.
FROM rust:1.95-bookworm AS build
# hadolint ignore=DL3008
RUN echo "deb http://deb.debian.org/debian bookworm-backports main" > /etc/apt/sources.list.d/backports.list \
    && apt-get update \
    && apt-get install -y --no-install-recommends libclang-dev \
    && apt-get install -y --no-install-recommends -t bookworm-backports cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY bench ./bench
RUN cargo build --release --locked --bin audience \
    && cp target/release/audience /usr/local/bin/audience

# Runtime: a slim Debian with the libraries the binary links beyond libc (OpenMP, C++).
FROM debian:bookworm-slim
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 libstdc++6 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/audience /usr/local/bin/audience
EXPOSE 8080
# Exec form, no shell and no init wrapper: SageMaker's `train` / `serve` argument and its SIGTERM
# reach audience directly.
ENTRYPOINT ["/usr/local/bin/audience", "container"]
