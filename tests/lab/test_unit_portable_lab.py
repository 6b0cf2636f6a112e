"""The unit tests need neither root nor Open vSwitch: they are run here as
user nobody, in a mount namespace where Open vSwitch's programs and files
are gone, as a contributor without them would run them."""

import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.lab

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OVS_PROGRAMS = ("ovs-vsctl", "ovs-ofctl", "ovs-appctl", "ovs-vswitchd", "ovsdb-server", "ovsdb-tool",
                "ovsdb-client", "ovs-vtep", "ovs-pki")
OVS_DIRS = ("/usr/share/openvswitch", "/etc/openvswitch", "/var/run/openvswitch", "/usr/lib/openvswitch")
NOBODY = 65534


def _closed_ancestor(path):
    """The outermost folder above ``path`` that others cannot enter, or None."""
    parts = os.path.abspath(path).split(os.sep)[1:]
    for i in range(1, len(parts)):
        folder = os.sep + os.path.join(*parts[:i])
        if not os.stat(folder).st_mode & 0o001:
            return folder
    return None


def _reachable(path, scratch, n):
    """Shell lines that let others reach ``path`` (its own permissions kept):
    a closed folder above it is covered with an open one holding only it."""
    closed = _closed_ancestor(path)
    if closed is None:
        return []
    keep = "%s/keep%d" % (scratch, n)
    return ["mkdir -p %s" % keep, "mount --bind %s %s" % (path, keep),
            "mount -t tmpfs -o mode=755 tmpfs %s" % closed,
            "mkdir -p %s" % path, "mount --bind %s %s" % (keep, path)]


def test_the_unit_tests_pass_as_a_normal_user_without_open_vswitch(tmp_path):
    scratch = str(tmp_path)
    os.chmod(scratch, 0o755)
    python = os.path.join(REPO, ".venv", "bin", "python")
    missing = os.path.join(scratch, "no-ovs")
    with open(missing, "w") as f:
        f.write("#!/bin/sh\necho \"$0: Open vSwitch is not installed here\" >&2\nexit 127\n")
    os.chmod(missing, 0o755)
    lines = ["set -e", "mount --make-rprivate /"]
    lines += _reachable(sys.base_prefix, scratch, 0) + _reachable(REPO, scratch, 1)
    for name in OVS_PROGRAMS:
        found = shutil.which(name)
        if found:
            lines.append("mount --bind %s %s" % (missing, os.path.realpath(found)))
    lines += ["mount -t tmpfs -o mode=755 tmpfs %s" % d for d in OVS_DIRS if os.path.isdir(d)]
    lines.append("cd %s" % REPO)
    lines.append("exec setpriv --reuid=%d --regid=%d --clear-groups env -i PATH=/usr/bin:/bin HOME=%s "
                 "%s -m pytest -p no:cacheprovider -q -o addopts= tests/unit" % (NOBODY, NOBODY, scratch, python))
    res = subprocess.run(["unshare", "--mount", "sh", "-c", "\n".join(lines)], capture_output=True, text=True,
                         timeout=600)
    tail = (res.stdout + res.stderr)[-3000:]
    assert res.returncode == 0, tail
    summary = res.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "skipped" not in summary, tail
