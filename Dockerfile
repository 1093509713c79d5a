# precis in a container: built in one stage, run from a slim one as a non-root user, offline.
# The models are not in the image: they live in a Hugging Face cache mounted at /models, filled
# once by `precis models fetch` (deploy/kubernetes/fetch-models-job.yaml), then read-only.
#
#   docker build -t precis .
#   docker run --rm -v precis-models:/models precis models fetch            # once, with network
#   docker run --rm --network none -v precis-models:/models:ro -v "$PWD":/work precis \
#       batch /work/articles -o /work/results.jsonl

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
# The CPU level the binary needs, as .cargo/config.toml sets it (that folder is not copied):
# x86-64-v3 (AVX2, FMA, F16C), what cluster nodes and laptops of the last ten years have; the
# AVX-512 kernels are still chosen at run time where the CPU has them (src/infer/cpu.rs).
ARG TARGET_CPU=x86-64-v3
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY benches benches
COPY models models
COPY src src
RUN RUSTFLAGS="-C target-cpu=${TARGET_CPU}" cargo build --release --locked --bin precis \
    && cp target/release/precis /usr/local/bin/precis

FROM debian:${DEBIAN_RELEASE}-slim
COPY --from=build /usr/local/bin/precis /usr/local/bin/precis
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin precis \
    && mkdir /models && chown precis:precis /models
USER 10001
# The cache is the volume; with HF_HUB_OFFLINE precis never touches the network, and a model
# missing from the volume is an error that names the fetch command.
ENV HF_HOME=/models \
    HF_HUB_OFFLINE=1
VOLUME ["/models"]
WORKDIR /home/precis
ENTRYPOINT ["precis"]
CMD ["--help"]
