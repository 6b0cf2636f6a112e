"""The scale workload compiled without a lab (benchmarks/bench_scale_compile.py):
the benchmark runs, and the flows stay within issue 6's budget."""

from benchmarks import bench_scale_compile

BUDGET = 17.5   # flows per port: 175,000 at 10,000 ports


def test_the_workload_compiles_within_the_flow_budget(capsys):
    flows = bench_scale_compile.run(1000)
    assert flows <= BUDGET * 1000
    assert "flows on br-int:  %d" % flows in capsys.readouterr().out
