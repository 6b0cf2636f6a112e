"""`dvn serve --tls`: the REST API over HTTPS with a certificate from dvn's
CA, which the CLI verifies (--ca-file, DVN_CA_FILE); plain HTTP is not
served then. A node that enrolled asks for its own admission with its
certificate."""

import os
import socket
import subprocess
import sys

import pytest

from ovsdb.pki import new_key_and_request, write_private
from tests.dvnproc import ROOT, Client, DvnServer


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def dvn(tmp_path_factory):
    state = str(tmp_path_factory.mktemp("tls"))
    srv = DvnServer(state, api_port=_free_port(), listen_ip="127.0.0.1", of_port=_free_port(),
                    ovsdb_port=_free_port(), extra=["--tls", "--openflow-lanes", "0"]).start()
    yield srv
    srv.stop()
    srv.stop_store()


def cli(dvn, *args, ca_file=None):
    env = dict(os.environ, DVN_URL=dvn.url, DVN_TOKEN=dvn.admin_token, PYTHONWARNINGS="ignore")
    env.pop("DVN_CA_FILE", None)
    if ca_file:
        env["DVN_CA_FILE"] = ca_file
    return subprocess.run([sys.executable, "-m", "controller.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_the_api_is_https_with_a_certificate_of_dvns_ca(dvn):
    assert dvn.url.startswith("https://")
    assert dvn.client().get("/v1/ca")["ca_hash"] == cli(dvn, "ca-hash", dvn.ca_file).stdout.strip()
    with pytest.raises(OSError):   # no plain HTTP on the API's port
        Client(dvn.api_port, dvn.admin_token).request("GET", "/v1/networks", timeout=5)
    assert "OpenFlow listener on 127.0.0.1:%d (TLS)" % dvn.of_port in dvn.log()


def test_the_cli_verifies_dvn_against_its_ca(dvn):
    ok = cli(dvn, "token", "list", ca_file=dvn.ca_file)
    assert ok.returncode == 0, ok.stderr
    refused = cli(dvn, "token", "list")   # the system's CAs do not know dvn's
    assert refused.returncode == 1 and refused.stderr.startswith("dvn: cannot reach dvn at https://")
    assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr and "Traceback" not in refused.stderr


def test_an_enrolled_node_is_known_by_its_certificate(dvn, tmp_path):
    made = dvn.client().post("/v1/join-tokens", {"node": "hv-tls"})
    key, csr = new_key_and_request("hv-tls")
    public = Client(dvn.api_port, "", ca_file=dvn.ca_file)
    got = public.call("POST", "/v1/enroll", {"token": made["token"], "csr": csr})
    write_private(str(tmp_path / "key.pem"), key)
    (tmp_path / "cert.pem").write_text(got["certificate"])
    node = Client(dvn.api_port, "", ca_file=dvn.ca_file, cert=(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")))
    assert node.get("/v1/enrollment") == {"node": "hv-tls", "admitted": True, "state": None}
    dvn.client().post("/v1/nodes/hv-tls/revoke", None)
    code, problem = node.request("GET", "/v1/enrollment")
    assert code == 403 and "revoked" in problem["detail"]
