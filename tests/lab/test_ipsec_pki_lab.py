"""IPsec by certificates of dvn's CA: nodes that join with --ipsec-pki get a
certificate for their own system-id, their key never leaves them, and
ovs-monitor-ipsec authenticates the IPsec mesh with the certificates.
(No ESP here: the tests check what is configured; docs/encryption.md.)"""

import os
import signal
import stat
import subprocess

import pytest

from ovsdb.node import tunnel_port_name
from tests.dvnproc import dvn_lab, join, resyncs, wait_in_sync, wait_resynced, wait_until
from tests.lab.test_encryption_lab import _ipsec_root, _monitor, _read, mac, tunnel_ports

pytestmark = pytest.mark.lab

HVS = {"hv1": "192.168.65.11", "hv2": "192.168.65.12"}


class Env:
    pass


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    state = tmp_path_factory.mktemp("dvn-pki")
    with dvn_lab("pki", 65, 18084, str(state), extra=["--ipsec-auth", "ca"]) as (lab, dvn):
        env = Env()
        env.lab, env.dvn, env.state = lab, dvn, str(state)
        env.hvs = {}
        for name, ip in HVS.items():
            hv = lab.add_hv(name, ip + "/24")
            lab.seed_neighbors()
            hv.pki = os.path.join(hv.dir, "pki")
            join(hv, dvn.listen_ip, ip, extra=["--ipsec-pki", hv.pki, "--pki-timeout", "30"])
            env.hvs[name] = hv
        env.api = dvn.client()
        wait_in_sync(env.api, HVS)
        # Nothing is encrypted yet: the nodes have plain tunnels only.
        env.before_encryption = {name: sorted(tunnel_ports(hv)) for name, hv in env.hvs.items()}
        # An encrypted port on hv1 and a port of its network on hv2: the pair needs IPsec.
        net = env.api.post("/v1/networks", {"name": "pkinet", "tenant": "acme", "cidrs": ["10.6.0.0/24"]})
        for i, (vm, hv, encrypt) in enumerate((("s1", "hv1", True), ("p2", "hv2", False)), start=1):
            port = env.api.post("/v1/ports", {"name": vm, "network": net["id"], "mac": mac(i),
                                              "ips": ["10.6.0.%d" % i], "encrypt": encrypt})
            lab.add_vm(vm, env.hvs[hv], "10.6.0.%d/24" % i, mac(i), iface_id=port["id"])
        for name, hv in env.hvs.items():
            peer = "hv2" if name == "hv1" else "hv1"
            wait_until(lambda: tunnel_ports(hv).get(tunnel_port_name(peer, "ipsec"), {}).get("remote_name") == peer,
                       timeout=20, what="%s's IPsec tunnel authenticated by certificate" % name)
        wait_in_sync(env.api, HVS)
        yield env


def test_a_pair_gets_its_ipsec_tunnel_only_once_it_carries_encrypted_traffic(pki):
    assert pki.before_encryption == {"hv1": [tunnel_port_name("hv2")], "hv2": [tunnel_port_name("hv1")]}
    assert sorted(tunnel_ports(pki.hvs["hv1"])) == sorted([tunnel_port_name("hv2"), tunnel_port_name("hv2", "ipsec")])


def test_each_node_gets_a_certificate_for_itself_and_keeps_its_key(pki):
    ca = os.path.join(pki.state, "ca-cert.pem")
    assert stat.S_IMODE(os.stat(os.path.join(pki.state, "ca-key.pem")).st_mode) == 0o600
    for name, hv in pki.hvs.items():
        cert, key = os.path.join(hv.pki, "node-cert.pem"), os.path.join(hv.pki, "node-key.pem")
        assert subprocess.run(["openssl", "verify", "-CAfile", ca, cert], capture_output=True).returncode == 0
        subject = subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in", cert],
                                 capture_output=True, text=True).stdout
        assert "CN=%s" % name in subject
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
        other = hv.vsctl("get", "Open_vSwitch", ".", "other_config")
        assert cert in other and key in other and os.path.join(hv.pki, "dvn-ca.pem") in other
        # The key is the node's alone: not in its database, not with dvn.
        with open(key) as f:
            secret = f.read().split("-----")[2].strip().splitlines()[1]
        assert secret not in hv.vsctl("list", "Open_vSwitch")
        assert not subprocess.run(["grep", "-rqF", secret, pki.state]).returncode == 0


def test_ipsec_tunnels_use_certificates_and_ovs_monitor_ipsec_configures_them(pki, tmp_path):
    hv1 = pki.hvs["hv1"]
    ports = tunnel_ports(hv1)
    ipsec, plain = ports[tunnel_port_name("hv2", "ipsec")], ports[tunnel_port_name("hv2")]
    assert ipsec["remote_name"] == "hv2" and "psk" not in ipsec and "psk" not in plain
    root = _ipsec_root(str(tmp_path / "strongswan"))
    monitor = _monitor(hv1, root, "strongswan")
    name = tunnel_port_name("hv2", "ipsec")
    try:
        wait_until(lambda: "conn %s-in-" % name in _read(root + "/etc/ipsec.conf"), timeout=15,
                   what="the IKE config of %s" % name)
        text = _read(root + "/etc/ipsec.conf")
        block = text[text.index("conn %s-in-" % name):]
        for want in ("right=%s" % HVS["hv2"], "leftid=hv1", "rightid=hv2",
                     "leftcert=%s" % os.path.join(hv1.pki, "node-cert.pem")):
            assert want in block, block
        assert "authby=psk" not in block
        assert ": RSA %s" % os.path.join(hv1.pki, "node-key.pem") in _read(root + "/etc/ipsec.secrets")
    finally:
        monitor.terminate()
        monitor.wait(timeout=10)


def test_a_controller_restart_rewrites_no_tunnel_even_before_every_node_is_back(pki):
    hv1, hv2 = pki.hvs["hv1"], pki.hvs["hv2"]
    before = tunnel_ports(hv1)
    manager = hv2.vsctl("get-manager")
    before_restart = {hv: resyncs(pki.dvn, hv) for hv in HVS}
    pki.dvn.kill(signal.SIGKILL)
    hv2.vsctl("del-manager")        # hv2's OVSDB session stays away while dvn comes back
    try:
        pki.dvn.start()
        # hv1 back in sync; dvn's "pending" covers a node's tunnel mesh too,
        # so whatever dvn would write to hv1's tunnels is written by then.
        wait_resynced(pki.dvn, pki.api, ["hv1"], before_restart)
        after_restart = pki.dvn.log().split("northbound store")[-1]
        assert "node hv1: tunnel mesh updated" not in after_restart   # hv2 is certified: the store says so
        assert tunnel_ports(hv1) == before
    finally:
        hv2.vsctl("set-manager", manager)
    wait_resynced(pki.dvn, pki.api, HVS, before_restart)


def test_a_request_for_another_nodes_name_is_not_signed(pki):
    from controller.pki import node_request
    hv2 = pki.hvs["hv2"]
    _key, csr = node_request(os.path.join(hv2.dir, "forged"), "hv1")   # hv2 asks for hv1's name
    hv2.vsctl("set", "Open_vSwitch", ".", 'external_ids:dvn-csr="%s"' % csr.replace("\n", "\\n"))
    pki.dvn.wait_log("certificate request not signed", timeout=10)
    assert "the request of node hv2 names hv1" in pki.dvn.log()
