# syntax=docker/dockerfile:1
#
# The one Skein image: every component is a subcommand of the same program
# (`skein operator`, `skein csi-controller`, `skein csi-node`, `skein net-agent`;
# see cmd/skein.ts). The build stage bundles the TypeScript with esbuild into
# dist/skein.mjs and compiles two programs with Bun into single executables
# (scripts/build.mjs): the CNI plugin, dist/skein-cni, that the net-agent
# copies onto each node, and the DNS program, dist/skein-dns, that the
# net-agent runs; the runtime stage
# is Node 20 plus the host tools the node components run.
#
#   docker build -t skein:0.1.0 .
#   docker build --build-arg ZFS_PACKAGE=zfs-fuse -t skein:0.1.0-zfs-fuse .
#
# The image runs as an unprivileged user (65532). The operator and the CSI
# controller keep it; the csi-node and net-agent DaemonSets run as root, as
# the chart sets: they mount filesystems, drive ZFS and change the host's network.

ARG NODE_VERSION=20

FROM node:${NODE_VERSION}-bookworm AS build
WORKDIR /src
# Dependencies first: this layer is reused until the lock file changes.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY scripts/ scripts/
COPY cmd/ cmd/
COPY kit/ kit/
COPY api/ api/
COPY crds/ crds/
COPY operator/ operator/
COPY csi/ csi/
COPY cni/ cni/
# `npm run build` writes the bundle and the executables. Fail here, not in a
# cluster, when it leaves out what the program loads at run time: the CSI
# proto beside the bundle, the plugin binary the net-agent installs and the
# DNS program it runs.
RUN npm run build \
 && test -f dist/skein.mjs \
 && test -f dist/csi.proto \
 && test -x dist/skein-cni \
 && test -x dist/skein-dns

FROM node:${NODE_VERSION}-bookworm-slim AS runtime
# zfsutils-linux (contrib) talks to the host's OpenZFS module through /dev/zfs
# and must be close to the module's release; zfs-fuse talks to the host's
# zfs-fuse daemon through its socket. Pick one with --build-arg ZFS_PACKAGE.
ARG ZFS_PACKAGE=zfsutils-linux
RUN sed -i 's/^Components: main$/Components: main contrib/' /etc/apt/sources.list.d/debian.sources \
 && apt-get update \
 && apt-get install -y --no-install-recommends \
      "${ZFS_PACKAGE}" \
      iproute2 \
      iptables \
      util-linux \
      mount \
      procps \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/dist/ /opt/skein/dist/
USER 65532:65532
ENTRYPOINT ["node", "/opt/skein/dist/skein.mjs"]
