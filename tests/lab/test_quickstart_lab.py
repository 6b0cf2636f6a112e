"""The README's walk-through ("Using it"), its `dvn` lines run as written, in a lab.

dvn serve and dvn join are the lab's own (tests/dvnproc.py runs both), and
the lab's VMs (veth pairs; the netdev datapath) stand in for the README's
namespace loop. Every other `dvn` line of that block runs as written, with
the connection the README exports ($DVN_URL, $DVN_TOKEN_FILE) pointing at
the lab's dvn, in the README's order; each ping line is checked against
what its comment promises: "no answer" or "answered".
"""

import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from tests.dvnproc import ROOT, add_joined_hv, dvn_lab, wait_in_sync, wait_until

pytestmark = pytest.mark.lab

HV_IP = "192.168.83.11"


def walkthrough():
    """The lines of the README's first code block under "## Using it"."""
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    section = text[text.index("## Using it"):]
    return re.search(r"```\n(.*?)```", section, re.S).group(1).splitlines()


def test_the_readme_walkthrough_ends_with_a_ping_a_groups_rule_lets_through():
    lines = walkthrough()
    with dvn_lab("qs", 83, 18093) as (lab, dvn):
        hv = add_joined_hv(lab, dvn, "hv1", HV_IP)
        api = dvn.client()
        wait_until(lambda: api.get("/v1/nodes/hv1")["state"] == "up", timeout=30, what="hv1 up")
        env = dict(os.environ, DVN_URL=dvn.url, DVN_TOKEN_FILE=os.path.join(dvn.state_dir, "admin.token"))
        for key in ("DVN_TOKEN", "DVN_CONFIG", "DVN_CA_FILE"):
            env.pop(key, None)

        def run(argv):
            out = subprocess.run([sys.executable, "-m", "controller.cli"] + argv, cwd=ROOT, env=env,
                                 capture_output=True, text=True, timeout=60)
            assert out.returncode == 0 and out.stderr == "", (argv, out)
            return out.stdout

        vms, pings = {}, []
        for line in lines:
            command, _, comment = line.partition("  #")
            command = command.strip().rstrip("\\").strip()
            if command.startswith("dvn ") and command.split()[1] not in ("serve", "join"):
                said = run(shlex.split(command)[1:])
                if command == "dvn node list":
                    assert re.search(r"^hv1\s.*\bup$", said, re.M), said
            elif command.startswith("for vm in "):          # the README's plugging loop, as lab VMs
                for name in command[len("for vm in "):].split(";")[0].split():
                    port = json.loads(run(["port", "show", name, "--json"]))
                    vms[name] = lab.add_vm(name, hv, port["ips"][0] + "/24", port["mac"], iface_id=port["id"])
                    wait_until(lambda: api.get("/v1/ports/%s" % port["id"])["node"] == "hv1",
                               what="port %s bound" % name)
            elif command.startswith("ip netns exec ") and " ping " in command:
                words = command.split()
                src, dst = vms[words[3]], words[-1]
                wait_in_sync(api, ["hv1"])
                if "no answer" in comment:
                    assert src.ping(dst, count=3)[1] == 0, "the README says %r" % line
                else:
                    assert "answered" in comment
                    assert src.ping_ok(dst), "the README says %r" % line
                pings.append(comment.strip())
        assert len(pings) == 2 and "no answer" in pings[0] and "answered" in pings[1], pings
        assert set(vms) == {"vm1", "vm2"}
        groups = {g["name"]: g["id"] for g in api.get("/v1/security-groups")}
        ports = {p["name"]: p for p in api.get("/v1/ports")}
        assert ports["vm2"]["security_groups"] == ports["vm1"]["security_groups"] == [groups["web"]]
