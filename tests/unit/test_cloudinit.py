"""docs/cloud-init/user-data.yaml, the example that makes a cloud instance a
dvn node on first boot: valid for cloud-init (Debian's `cloud-init schema`,
which needs no network), and it writes exactly docs/cloud-init/dvn-node-join.sh
and runs it, so the example and the script the lab runs cannot drift apart.
(tests/lab/test_cloudinit_lab.py runs the script on a fresh node.)"""

import os
import shutil
import subprocess

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
USER_DATA = os.path.join(ROOT, "docs", "cloud-init", "user-data.yaml")
SCRIPT = os.path.join(ROOT, "docs", "cloud-init", "dvn-node-join.sh")


def schema(path):
    if shutil.which("cloud-init") is None:
        pytest.fail("cloud-init is not installed (tools/setup.sh installs Debian's cloud-init package)")
    return subprocess.run(["cloud-init", "schema", "--config-file", path], capture_output=True, text=True,
                          timeout=60)


def test_the_user_data_is_valid_cloud_config():
    res = schema(USER_DATA)
    assert res.returncode == 0 and "Valid cloud-config" in res.stdout, res.stdout + res.stderr


def test_the_schema_check_refuses_a_broken_user_data(tmp_path):
    """The check above can fail: the same file with `packages` not a list is refused."""
    with open(USER_DATA) as f:
        text = f.read()
    broken = tmp_path / "user-data.yaml"
    broken.write_text(text.replace("packages:\n  - openvswitch-switch\n  - python3-venv\n",
                                   "packages: openvswitch-switch\n"))
    assert broken.read_text() != text
    res = schema(str(broken))
    assert res.returncode != 0 and "packages" in res.stdout + res.stderr, res.stdout + res.stderr


def test_the_user_data_installs_ovs_writes_the_script_and_runs_it():
    with open(USER_DATA) as f:
        data = yaml.safe_load(f)
    assert "openvswitch-switch" in data["packages"]
    with open(SCRIPT) as f:
        script = f.read()
    written = [w for w in data["write_files"] if w["content"] == script]
    assert len(written) == 1, "user-data.yaml must embed docs/cloud-init/dvn-node-join.sh as it is"
    assert written[0]["permissions"] == "0755"
    run = [cmd for cmd in data["runcmd"] if cmd[0] == written[0]["path"]]
    assert len(run) == 1
    args = run[0][1:]
    for option in ("--controller", "--token", "--ca-hash"):
        assert option in args


def test_the_script_is_bash_that_parses_and_asks_for_what_it_needs():
    assert subprocess.run(["bash", "-n", SCRIPT]).returncode == 0
    res = subprocess.run(["bash", SCRIPT, "--controller", "192.0.2.1"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 2 and "give --controller, --token and --ca-hash" in res.stderr, res.stderr
