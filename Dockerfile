# hale container images. Pick one with --target (the last stage is the
# default, so `docker build -t hale .` gives the distroless image):
#
#   runtime         Debian slim + the Debian packages of the libraries hale links
#   distroless      only the binary and exactly the shared libraries it links
#                   (with the loader), no shell, no package manager
#   sqlite          the SQLite-only build (-DHALE_WITH_PG=OFF -DHALE_WITH_REDIS=OFF)
#                   on the static distroless base: binary, libc, libsqlite3,
#                   no libpq/hiredis/OpenSSL/GnuTLS/LDAP (the smallest image)
#   builder         compiles hale; the stage the others copy from
#   builder-sqlite  compiles the SQLite-only hale on top of builder
#
# A static binary on scratch is not possible with Debian's libraries:
# docker/STATIC.md has the linker errors.
#
# Every base is a build argument whose default is the upstream image pinned
# by digest (the tag in the comment above it), so a build is reproducible;
# docker/README.md says how to refresh the digests. A machine without
# registry access passes local images (scripts/image.sh does):
#   --build-arg BUILDER_IMAGE=...  --build-arg RUNTIME_IMAGE=...
#   --build-arg DISTROLESS_IMAGE=...  --build-arg STATIC_IMAGE=...
# The Debian packages are pinned too: docker/packages.lock (made by
# scripts/lock-packages.sh) names every package of the builder and runtime
# stages with its version, and docker/apt-pinned.sh installs exactly those.
#
# Run it hardened, with the data directory on a volume or a tmpfs:
#   docker run --read-only --cap-drop ALL --security-opt no-new-privileges \
#     --tmpfs /app/data:uid=65532,gid=65532 -p 8080:8080 hale
# Written for the classic builder and BuildKit alike (no RUN --mount, no
# heredocs): the Docker here has no buildx.

# debian:bookworm-slim
ARG BUILDER_IMAGE=debian@sha256:b55e2651b71408015f8068dd74e1d04404a8fa607dd2cfe284b4824c11f4d9bd
# debian:bookworm-slim
ARG RUNTIME_IMAGE=debian@sha256:b55e2651b71408015f8068dd74e1d04404a8fa607dd2cfe284b4824c11f4d9bd
# gcr.io/distroless/cc-debian12:latest
ARG DISTROLESS_IMAGE=gcr.io/distroless/cc-debian12@sha256:b7550f0b15838de14c564337eef2b804ba593ae55d81ca855421bd52f19bb480
# gcr.io/distroless/static-debian12:nonroot
ARG STATIC_IMAGE=gcr.io/distroless/static-debian12@sha256:cdf4daaf154e3e27cfffc799c16f343a384228f38646928a1513d925f473cb46

# ---------------------------------------------------------------- builder
FROM ${BUILDER_IMAGE} AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive CCACHE_DISABLE=1
WORKDIR /src

# The dependency layer: only the scripts and the lock that name the packages
# are copied first, so a source change reuses this layer. docker/apt-pinned.sh
# installs exactly the versions docker/packages.lock pins for "builder"
# (instead of `apt-get upgrade`: the lock was made from bookworm +
# bookworm-security, so it holds the security updates published when it was
# refreshed). install-deps.sh then finds every build package present. What
# apt knew is recorded before the lists go, for the SBOM (docker/sbom.py): the
# lock, the sources and `apt-cache policy` of every package.
COPY scripts/install-deps.sh scripts/
COPY docker/packages.lock docker/apt-pinned.sh docker/
RUN apt-get update \
 && docker/apt-pinned.sh builder docker/packages.lock \
 && scripts/install-deps.sh build \
 && mkdir -p /usr/local/share/hale-build \
 && cp docker/packages.lock /usr/local/share/hale-build/packages.lock \
 && find /etc/apt/ \( -name '*.sources' -o -name '*.list' \) -exec cat {} + \
      > /usr/local/share/hale-build/apt-sources.txt \
 && dpkg-query -W -f='${Package}\n' | xargs apt-cache policy \
      > /usr/local/share/hale-build/apt-policy.txt \
 && rm -rf /var/lib/apt/lists/*

COPY CMakeLists.txt ./
COPY cmake/ cmake/
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

# --------------------------------------------------------- builder-sqlite
# The same sources and packages, built without PostgreSQL and Redis: the
# binary links only libsqlite3 and libc, and /out is staged from it.
FROM builder AS builder-sqlite
ARG HALE_REVISION=unknown
RUN cmake -S . -B build-sqlite -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DHALE_WITH_PG=OFF -DHALE_WITH_REDIS=OFF -DHALE_REVISION="${HALE_REVISION}" >/dev/null \
 && cmake --build build-sqlite --target hale \
 && rm -rf /out \
 && docker/stage-rootfs.sh build-sqlite/hale config /out
LABEL org.opencontainers.image.title=hale hale.stage=builder-sqlite

# ---------------------------------------------------------------- runtime
FROM ${RUNTIME_IMAGE} AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Every package at the version docker/packages.lock pins for "runtime" (the
# base's own packages too: no `apt-get upgrade`); the builder's list (the
# packages shipping the libraries hale names in DT_NEEDED: libsqlite3-0,
# libpq5, ...) must be among them, so this stage follows the binary.
COPY docker/packages.lock docker/apt-pinned.sh /tmp/hale-apt/
COPY --from=builder /out/runtime-packages.txt /tmp/hale-apt/
RUN apt-get update \
 && /tmp/hale-apt/apt-pinned.sh runtime /tmp/hale-apt/packages.lock /tmp/hale-apt/runtime-packages.txt \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /tmp/hale-apt
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

# ----------------------------------------------------------------- sqlite
# The minimal image: distroless static (passwd, CA bundle, no libc) plus the
# SQLite-only binary, its libraries and the loader, all from builder-sqlite.
FROM ${STATIC_IMAGE} AS sqlite
COPY --from=builder-sqlite /out/rootfs/ /
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
      org.opencontainers.image.description="hale key-value HTTP service, SQLite only (distroless static)" \
      org.opencontainers.image.version=${HALE_VERSION} \
      org.opencontainers.image.revision=${HALE_REVISION} \
      hale.stage=sqlite
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
