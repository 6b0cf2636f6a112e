#!/usr/bin/env bash
# Install what dvn's demo and tests need, idempotently: Debian packages (only
# those missing), a virtualenv in .venv, and dvn with its Python dependencies
# (again only when setup.cfg changed). Runs as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
    openvswitch-switch openvswitch-vtep openvswitch-ipsec   # OVS 3.1: the switches, the VTEP emulator, IPsec monitor
    iproute2 ethtool iputils-ping curl socat tcpdump openssl procps
    nftables                                                # the lab's 1:1 NAT (tests/lab/test_underlay_lab.py)
    libstrongswan-standard-plugins                          # AES-GCM, the IKE cipher ovs-monitor-ipsec asks for
    cloud-init   # only for `cloud-init schema`, which checks docs/cloud-init offline; no service starts
    python3 python3-venv python3-dev gcc
)

if [ "$(id -u)" != 0 ]; then
    echo "tools/setup.sh: run as root (the lab needs network namespaces and Open vSwitch)" >&2
    exit 1
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    [ "$pkg" = "#" ] && continue
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # Installing starts no service here; dvn's lab runs its own OVS daemons anyway.
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv"
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.dvn-installed
want=$(cat setup.cfg pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "==> installing dvn and its Python dependencies into .venv"
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -c constraints.txt -e '.[test]'
    echo "$want" > "$stamp"
fi
