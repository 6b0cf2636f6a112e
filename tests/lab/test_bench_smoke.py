"""Every benchmark without a smoke run of its own runs here, small, as its
command: so none breaks silently (a log line it parses, a lab it builds).
Their figures are for reading, not for asserting."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.lab

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SMALL = {
    "bench_compile": [],
    "bench_firewall": [],
    "bench_install": ["--flows", "500", "--networks", "5", "--fake-nodes", "2"],
    "bench_convergence": ["--ports", "30", "--hvs", "2"],
    "bench_rule_change": ["--ports", "40", "--groups", "4"],
    "bench_lb": ["--vips", "4", "--members", "2", "--nodes", "2", "--ports", "4", "--rounds", "1",
                 "--mbytes", "1", "--seconds", "1", "--timeout", "120"],
    "bench_scale": ["--ports", "200", "--timeout", "300", "--quiet", "2", "--tls", "both", "--tracemalloc"],
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_the_benchmark_runs_and_prints_its_figures(name):
    res = subprocess.run([sys.executable, "-m", "benchmarks." + name] + SMALL[name], cwd=ROOT,
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    assert any(ch.isdigit() for ch in res.stdout), res.stdout[-2000:]
