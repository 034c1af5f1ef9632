# hale container images. Pick one with --target (the last stage is the
# default, so `docker build -t hale .` gives the distroless image):
#
#   runtime     Debian slim + the Debian packages of the libraries hale links
#   distroless  only the binary and exactly the shared libraries it links
#               (with the loader), no shell, no package manager
#   builder     compiles hale; the stage the others copy from
#
# A static binary on scratch is not possible with Debian's libraries:
# docker/STATIC.md has the linker errors.
#
# Every base is a build argument with its upstream default, so that a machine
# without registry access passes local images (scripts/image.sh does):
#   --build-arg BUILDER_IMAGE=...  --build-arg RUNTIME_IMAGE=...
#   --build-arg DISTROLESS_IMAGE=...
#
# Run it hardened, with the data directory on a volume or a tmpfs:
#   docker run --read-only --cap-drop ALL --security-opt no-new-privileges \
#     --tmpfs /app/data:uid=65532,gid=65532 -p 8080:8080 hale
# Written for the classic builder and BuildKit alike (no RUN --mount, no
# heredocs): the Docker here has no buildx.

ARG BUILDER_IMAGE=debian:bookworm-slim
ARG RUNTIME_IMAGE=debian:bookworm-slim
ARG DISTROLESS_IMAGE=gcr.io/distroless/cc-debian12

# ---------------------------------------------------------------- builder
FROM ${BUILDER_IMAGE} AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive CCACHE_DISABLE=1
WORKDIR /src

# The dependency layer: only the script that names the packages is copied
# first, so a source change reuses this layer. `apt-get upgrade` takes the
# bookworm-security updates the base image may not have yet (the base's
# sources must list bookworm-security, as debian:bookworm-slim's do). What
# apt knew is recorded before the lists go, for the SBOM's security check
# (docker/sbom.py): the sources and `apt-cache policy` of every package.
COPY scripts/install-deps.sh scripts/
RUN apt-get update \
 && apt-get -y upgrade \
 && scripts/install-deps.sh build \
 && mkdir -p /usr/local/share/hale-build \
 && find /etc/apt/ \( -name '*.sources' -o -name '*.list' \) -exec cat {} + \
      > /usr/local/share/hale-build/apt-sources.txt \
 && dpkg-query -W -f='${Package}\n' | xargs apt-cache policy \
      > /usr/local/share/hale-build/apt-policy.txt \
 && rm -rf /var/lib/apt/lists/*

COPY CMakeLists.txt ./
COPY src/ src/
COPY config/ config/
# .git is not in the context: the revision comes as a build argument
# (scripts/image.sh passes `git rev-parse`; CMake takes it as HALE_REVISION).
ARG HALE_REVISION=unknown
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DHALE_REVISION="${HALE_REVISION}" >/dev/null \
 && cmake --build build --target hale

COPY docker/stage-rootfs.sh docker/
RUN docker/stage-rootfs.sh build/hale config /out
LABEL org.opencontainers.image.title=hale hale.stage=builder

# ---------------------------------------------------------------- runtime
FROM ${RUNTIME_IMAGE} AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The packages come from the builder's list (those shipping the libraries
# hale names in DT_NEEDED: libsqlite3-0, libpq5, ...), so this
# stage follows the binary; versions are not pinned: the stage takes the
# newest from bookworm + bookworm-security on each build.
COPY --from=builder /out/runtime-packages.txt /tmp/
RUN apt-get update \
 && apt-get -y upgrade \
 && xargs -a /tmp/runtime-packages.txt \
      apt-get install -y --no-install-recommends \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt
COPY --from=builder /out/app/ /app/
WORKDIR /app
ENV LOG_FORMAT=json HALE_CONFIG_DIR=/app/config
VOLUME ["/app/data"]
EXPOSE 8080 9090
USER 65532:65532
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/app/hale", "--health-check"]
ARG HALE_VERSION=0.1.0
ARG HALE_REVISION=unknown
LABEL org.opencontainers.image.title=hale \
      org.opencontainers.image.description="hale key-value HTTP service (Debian slim)" \
      org.opencontainers.image.version=${HALE_VERSION} \
      org.opencontainers.image.revision=${HALE_REVISION} \
      hale.stage=runtime
ENTRYPOINT ["/app/hale"]

# ------------------------------------------------------------- distroless
FROM ${DISTROLESS_IMAGE} AS distroless
COPY --from=builder /out/rootfs/ /
WORKDIR /app
ENV LOG_FORMAT=json HALE_CONFIG_DIR=/app/config
VOLUME ["/app/data"]
EXPOSE 8080 9090
USER 65532:65532
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/app/hale", "--health-check"]
ARG HALE_VERSION=0.1.0
ARG HALE_REVISION=unknown
LABEL org.opencontainers.image.title=hale \
      org.opencontainers.image.description="hale key-value HTTP service (distroless)" \
      org.opencontainers.image.version=${HALE_VERSION} \
      org.opencontainers.image.revision=${HALE_REVISION} \
      hale.stage=distroless
ENTRYPOINT ["/app/hale"]
