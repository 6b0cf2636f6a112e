"""No dead code: vulture finds nothing unused in dvn's packages, tests and
benchmarks, but for the names tools/vulture_whitelist.py says a framework uses."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_vulture_finds_no_dead_code():
    res = subprocess.run([sys.executable, "-m", "vulture", "flows", "ovsdb", "controller", "tests", "benchmarks",
                          "tools/vulture_whitelist.py"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
