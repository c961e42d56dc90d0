#!/usr/bin/env bash
# Installs the Debian packages Skein's tests and demo need. Idempotent: does
# nothing (not even `apt-get update`) when every package is already present.
set -euo pipefail

packages=(
  zfs-fuse            # real ZFS pools on sparse files (production uses OpenZFS)
  iproute2 iputils-ping bridge-utils
  iperf3              # overlay throughput benchmarks
  containernetworking-plugins  # reference CNI plugins: the yardstick
  dnsutils            # dig
  dnsmasq-base        # DNS yardstick and local upstream for forwarding tests
  dnsperf             # DNS benchmark (npm run bench -- dns)
  socat               # bridges unix sockets into node namespaces
  openssl             # test certificates for the API server fixture
  iptables            # pod masquerade
  util-linux          # nsenter, mount, losetup
  procps psmisc       # ps/pkill in fixture teardown checks
)

missing=()
for p in "${packages[@]}"; do
  case "$p" in *-) continue ;; esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-packages: all ${#packages[@]} Debian packages present"
  exit 0
fi

echo "install-packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# zfs-fuse's postinst tries to start its daemon; policy-rc.d stops that so the
# fixture decides when the daemon runs (and stops only what it started).
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
  echo "install-packages: FAILED to install Debian packages: ${missing[*]}" >&2
  echo "install-packages: check that the Debian mirror is reachable (apt-get update) and the names exist (apt-cache policy NAME)" >&2
  exit 1
fi
echo "install-packages: done"
