# dvn: `make demo` shows a whole lab working; `make test` runs the whole suite.
# Both install what they need first (tools/setup.sh: apt packages, .venv, pip).

PY := .venv/bin/python
PYTEST := .venv/bin/pytest

.PHONY: all deps demo test bench clean

all: test

deps:
	@bash tools/setup.sh

demo: deps
	$(PY) -m tests.demo

test: deps
	$(PYTEST) -p no:cacheprovider

bench: deps
	$(PY) -m benchmarks.bench_compile
	$(PY) -m benchmarks.bench_firewall
	$(PY) -m benchmarks.bench_scale_compile
	$(PY) -m benchmarks.bench_packet
	$(PY) -m benchmarks.bench_install
	$(PY) -m benchmarks.bench_convergence
	$(PY) -m benchmarks.bench_lb
	$(PY) -m benchmarks.bench_scale
	$(PY) -m benchmarks.bench_policy
	$(PY) -m benchmarks.bench_rule_change
	$(PY) -m benchmarks.bench_fleet

clean:
	rm -rf .venv *.egg-info .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
