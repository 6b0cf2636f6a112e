"""benchmarks/bench_policy.py runs (one round, on a small lab) and prints its
figures; the figures themselves are for reading, not for asserting."""

import pytest

from benchmarks import bench_policy

pytestmark = pytest.mark.lab


def test_the_policy_benchmark_runs_and_prints_its_figures(capsys):
    figures = bench_policy.run(rounds=1)
    out = capsys.readouterr().out
    for what in ("established ping's last answer", "TCP let in", "classify flow marked", "ovs-vswitchd killed",
                 "OFFLINE", "logged-packet flood"):
        assert what in out, out
    assert all(figures[k] for k in figures), figures
