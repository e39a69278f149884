#!/usr/bin/env bash
# Runs a benchmark suite against the release build, peers installed in benchmarks/.venv.
#   benchmarks/run.sh tpch --scale 1
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p insightflow-server --bin insightflow \
  -p insightflow-bench-embedded --bin df-embedded
# TPC-H data generator (crates.io), built once into benchmarks/.tools.
if [ ! -x benchmarks/.tools/bin/tpchgen-cli ]; then
  cargo install --locked --root benchmarks/.tools tpchgen-cli --version 4.0.0
fi
if [ ! -x benchmarks/.venv/bin/python ]; then
  python3 -m venv benchmarks/.venv
fi
benchmarks/.venv/bin/pip install -q --disable-pip-version-check -r benchmarks/requirements.txt
exec benchmarks/.venv/bin/python benchmarks/run.py "$@"
