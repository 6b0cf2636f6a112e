"""benchmarks/bench_fleet.py runs (three nodes, a small workload) and prints
its figures; the figures themselves are for reading, not for asserting."""

import pytest

from benchmarks import bench_fleet

pytestmark = pytest.mark.lab


def test_the_fleet_benchmark_runs_and_prints_its_figures(capsys):
    fig = bench_fleet.run(3, 100, ops=1, timeout=120)   # (the workload needs 100 ports or so)
    out = capsys.readouterr().out
    for what in ("idle mesh in sync", "full convergence", "rule added", "dvn SIGKILL and restart"):
        assert what in out, out
    assert fig["restart_changes"] == 0, fig     # a restart re-sends nothing
    assert fig["ipsec_keys"] == 0, fig          # nothing encrypted, no pairwise keys
