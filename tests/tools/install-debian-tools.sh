#!/usr/bin/env bash
# Install the real container tools the /v2 tests drive (tests/tools/engines.py), from Debian's
# packages: docker.io (dockerd, the docker client, containerd and its `ctr`), skopeo, busybox-static
# (the static /bin/busybox the offline test image is made of), docker-registry (CNCF Distribution
# 2.8, the peer registry) and debootstrap (`make sam`'s root filesystem: local/sam/install.py).
# Idempotent: a no-op when every binary is present.
# Needs root (CI runs as root); nothing is downloaded later, when the tests run.
# Usage: tests/tools/install-debian-tools.sh
set -euo pipefail

# binary -> the Debian package that ships it
declare -A wanted=(
    [/usr/sbin/dockerd]=docker.io
    [/usr/bin/docker]=docker.io
    [/usr/bin/containerd]=docker.io  # docker.io depends on containerd, which ships containerd and ctr
    [/usr/bin/ctr]=docker.io
    [/usr/bin/skopeo]=skopeo
    [/usr/bin/docker-registry]=docker-registry
    [/usr/sbin/debootstrap]=debootstrap  # the root filesystem of `make sam`'s runtime image (local/sam)
)
missing=()
for binary in "${!wanted[@]}"; do
    [[ -x "$binary" ]] || missing+=("${wanted[$binary]}")
done
# /bin/busybox must be the static one (busybox-static, which replaces the dynamic busybox package):
# only a static binary runs in an image with no libc.
if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed'; then
    missing+=(busybox-static)
fi
if ((${#missing[@]} == 0)); then
    exit 0
fi
readarray -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)
if [[ $(id -u) != 0 ]]; then
    echo "install-debian-tools: run as root to install ${packages[*]} (apt-get)" >&2
    exit 1
fi
echo "==> Debian packages for the container-tool tests: ${packages[*]}"
export DEBIAN_FRONTEND=noninteractive
# The packages' services are not wanted: the tests start private daemons of their own. A
# policy-rc.d that answers 101 keeps invoke-rc.d (the packages' postinst) from starting them on a
# machine without systemd; it is removed again unless one was there before.
policy=/usr/sbin/policy-rc.d
if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
# --no-install-recommends: not cgroupfs-mount, git, ubuntu-fan and the rest docker.io recommends.
apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confdef \
    -o Dpkg::Options::=--force-confold "${packages[@]}"
# Where systemd runs, it starts the services regardless of policy-rc.d: stop and disable them.
if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
    systemctl disable --now docker.socket docker.service containerd.service docker-registry.service \
        >/dev/null 2>&1 || true
fi
