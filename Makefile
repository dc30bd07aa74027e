# The two README commands: `make demo` (the demo zoo end to end) and `make test` (the suite).
# Both create .venv and install the pinned requirements first (about 2 minutes, once).
SHELL := /bin/bash
VENV ?= .venv
ACTIVATE := source $(VENV)/bin/activate
CORES ?= 2
# Extra pip options for the install, e.g. on a CPU-only machine without a local torch wheel:
# PIP_ARGS="--index-url <PyTorch's CPU wheel index> --extra-index-url <your usual package index>"
PIP_ARGS ?=
PIP := $(VENV)/bin/pip install -q --disable-pip-version-check $(PIP_ARGS)

.PHONY: install demo test test-data lint bench clean

# Runtime and test pins in ONE pip call, so torch==2.13.0 is part of every resolution;
# then the package itself, editable, without letting pip touch the pinned dependencies.
$(VENV)/.installed: requirements.txt requirements-test.txt pyproject.toml setup.py zoo/_fused.c
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(PIP) -r requirements.txt -r requirements-test.txt
	$(PIP) --no-deps -e .
	touch $@

install: $(VENV)/.installed

demo: install
	$(ACTIVATE) && zoo validate config/config.yaml && time snakemake --cores $(CORES) && zoo summary

# As root (CI), also install Debian's real Fashion-MNIST files so the loader is tested on
# them, and Debian's Chromium so the report's screenshot checks run (tests/report/); elsewhere
# those tests skip with the reason. The SLURM tests install and start their own single-node
# cluster (tests/cluster/start-slurm.sh) and skip where they cannot.
test-data:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && [ ! -d /usr/share/datasets/fashion-mnist ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) \
	    >/tmp/zoo-apt-fashion.log 2>&1 || echo "note: dataset-fashion-mnist not installed; its test will skip"; fi
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! command -v chromium >/dev/null; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	    >/tmp/zoo-apt-chromium.log 2>&1 || echo "note: chromium not installed; the report screenshot tests will skip"; fi

test: install test-data
	$(ACTIVATE) && ruff check zoo tests benchmarks && snakefmt --check . && snakemake --lint && pytest -q

lint: install
	$(ACTIVATE) && ruff check zoo tests benchmarks && snakefmt --check . && snakemake --lint

# Speed and quality benchmarks; each measures its baseline in the same run (benchmarks/out/).
bench: install
	$(ACTIVATE) && snakemake --cores $(CORES) -q \
	  && python benchmarks/train_throughput.py \
	  && python benchmarks/spectral_throughput.py --zoo data/zoos/digits-mlp \
	  && python benchmarks/landscape_throughput.py --zoo data/zoos/digits-mlp \
	  && python benchmarks/learners_table.py data/zoos/digits-mlp benchmarks/out/learners_demo.parquet \
	       --learners statnn-gbm statnn-ridge equivariant flat-mlp --augments none noise --seeds 0 1 2 \
	  && python benchmarks/catalog_scale.py

clean:
	rm -rf data/zoos data/learners data/zoo.duckdb data/logs .snakemake

# Learner benchmark (docs/learners.md "Benchmark"): trains the three benchmark zoos (train +
# weights only; resumable), runs every learner row under the NFN protocol with 3 learner
# seeds, and writes benchmarks/out/learners_bench.md (+ results Parquet per zoo). Re-running
# skips zoos and rows already done; BENCH_ZOOS picks a subset.
.PHONY: bench-learners
BENCH_ZOOS ?= bench-mlp-digits bench-cnn-digits bench-mlp-mnist1d
bench-learners: install
	$(ACTIVATE) && time python benchmarks/bench_learners.py all --data data --out benchmarks/out --zoos $(BENCH_ZOOS)
