#!/bin/bash
# Make this host a dvn node: Open vSwitch installed and running, dvn
# installed, and `dvn join` with a join token (docs/join.md). cloud-init runs
# it on first boot (docs/cloud-init/user-data.yaml); it is safe to run again:
# it skips what is installed or running, and a node that has joined this
# controller already is left as it is (a token admits once).
#
#   dvn-node-join.sh --controller HOST --token ID.SECRET --ca-hash sha256:HEX
#                    [--system-id NAME] [--encap-ip IP] [--api-url URL]
#                    [--pki-dir DIR] [--wait S] [--dvn-package PIP-SPEC]
#                    [-- more `dvn join` options]
#
# --system-id    the node's name (default: the host name); a token made with
#                `dvn token create --node NAME` admits only NAME
# --encap-ip     its tunnel address (default: its source address towards HOST)
# --wait         seconds `dvn join` waits for dvn's API if it is not up yet,
#                and then for the node's sessions (default 300)
# --dvn-package  what pip installs into /opt/dvn when `dvn` is not on PATH
#                (a wheel's path or URL, or git+https://...)
set -euo pipefail

CONTROLLER= TOKEN= CA_HASH= SYSTEM_ID= ENCAP_IP= API_URL= WAIT=300 DVN_PACKAGE=
PKI_DIR=/etc/openvswitch/dvn
OVS_RUN=${OVS_RUNDIR:-/var/run/openvswitch}
OVS_LOG=${OVS_LOGDIR:-/var/log/openvswitch}

say() { echo "dvn-node-join: $*"; }
die() { echo "dvn-node-join: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case $1 in
        --controller) CONTROLLER=$2; shift 2 ;;
        --token) TOKEN=$2; shift 2 ;;
        --ca-hash) CA_HASH=$2; shift 2 ;;
        --system-id) SYSTEM_ID=$2; shift 2 ;;
        --encap-ip) ENCAP_IP=$2; shift 2 ;;
        --api-url) API_URL=$2; shift 2 ;;
        --pki-dir) PKI_DIR=$2; shift 2 ;;
        --wait) WAIT=$2; shift 2 ;;
        --dvn-package) DVN_PACKAGE=$2; shift 2 ;;
        --) shift; break ;;
        *) die "unknown option $1 (see the head of $0)" ;;
    esac
done
[ -n "$CONTROLLER" ] && [ -n "$TOKEN" ] && [ -n "$CA_HASH" ] || die "give --controller, --token and --ca-hash"
[ "$(id -u)" = 0 ] || die "run as root"
SYSTEM_ID=${SYSTEM_ID:-$(hostname -s)}

apt_install() {
    command -v apt-get >/dev/null || die "$* missing, and no apt-get here to install it: install it first"
    say "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

# 1. Open vSwitch (the distribution's package also starts it, where systemd runs).
command -v ovs-vsctl >/dev/null && command -v ovs-vswitchd >/dev/null || apt_install openvswitch-switch

# 2. dvn.
if ! command -v dvn >/dev/null; then
    [ -n "$DVN_PACKAGE" ] || die "dvn is not installed: give --dvn-package (a wheel, or git+https://...)"
    python3 -m venv --help >/dev/null 2>&1 || apt_install python3-venv
    say "installing dvn into /opt/dvn"
    [ -x /opt/dvn/bin/pip ] || python3 -m venv /opt/dvn
    /opt/dvn/bin/pip install -q "$DVN_PACKAGE"
    ln -sf /opt/dvn/bin/dvn /usr/local/bin/dvn
fi

# 3. Open vSwitch running: used if it runs, else started.
db_up() { ovs-vsctl --timeout=5 --no-wait show >/dev/null 2>&1; }
vswitchd_up() { ovs-appctl --timeout=5 -t ovs-vswitchd version >/dev/null 2>&1; }
if ! { db_up && vswitchd_up; }; then
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
        say "starting Open vSwitch (systemd)"
        systemctl enable --now openvswitch-switch
    else
        # No systemd (a container, dvn's lab): the distribution's ovs-ctl for
        # ovsdb-server (it serves the Manager table and the SSL settings from
        # the database, which `dvn join` sets), ovs-vswitchd directly: ovs-ctl
        # would load the kernel module first, and without one the userspace
        # datapath is all there is.
        OVS_CTL=/usr/share/openvswitch/scripts/ovs-ctl
        db_up || { say "starting ovsdb-server"; "$OVS_CTL" --no-ovs-vswitchd --no-monitor \
                       --system-id="$SYSTEM_ID" start >/dev/null; }
        if ! vswitchd_up; then
            say "starting ovs-vswitchd"
            extra=()
            [ -e /sys/module/openvswitch ] || extra=(--disable-system)
            ovs-vswitchd "unix:$OVS_RUN/db.sock" -vconsole:off --pidfile --detach --no-chdir \
                --log-file="$OVS_LOG/ovs-vswitchd.log" "${extra[@]}"
        fi
    fi
    for _ in $(seq 50); do db_up && vswitchd_up && break; sleep 0.2; done
    db_up && vswitchd_up || die "Open vSwitch did not start (see $OVS_LOG)"
fi

# 4. Join, once.
host=$CONTROLLER
case $host in *:*) host="[$host]" ;; esac
if [ -s "$PKI_DIR/node-cert.pem" ] &&
        ovs-vsctl --timeout=5 get-controller br-int 2>/dev/null | grep -qF "ssl:$host:"; then
    say "this node joined dvn at $CONTROLLER already (certificate $PKI_DIR/node-cert.pem): nothing to do"
    exit 0
fi
if [ -z "$ENCAP_IP" ]; then
    addr=$(getent ahosts "$CONTROLLER" | awk 'NR == 1 { print $1 }')
    ENCAP_IP=$(ip -o route get "${addr:-$CONTROLLER}" | sed -n 's/.* src \([^ ]*\).*/\1/p')
    [ -n "$ENCAP_IP" ] || die "no route to $CONTROLLER to take this node's address from: give --encap-ip"
fi
args=(--controller "$CONTROLLER" --encap-ip "$ENCAP_IP" --system-id "$SYSTEM_ID"
      --token "$TOKEN" --ca-hash "$CA_HASH" --pki-dir "$PKI_DIR" --wait "$WAIT")
[ -z "$API_URL" ] || args+=(--api-url "$API_URL")
say "joining dvn at $CONTROLLER as $SYSTEM_ID (tunnel address $ENCAP_IP)"
exec dvn join "${args[@]}" "$@"
