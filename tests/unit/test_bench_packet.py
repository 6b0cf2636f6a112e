"""benchmarks/bench_packet.py runs, and both approaches give the same answers."""

from benchmarks import bench_packet


def test_the_packet_benchmark_runs(capsys):
    rates = bench_packet.run(seconds=0.01)
    assert set(rates) == {"os-ken", "struct"}
    assert all(rate > 0 for table in rates.values() for rate in table.values())
    assert "reset for a SYN" in capsys.readouterr().out
