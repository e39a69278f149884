#!/usr/bin/env bash
# Runs a benchmark suite against the release build, peers installed in benchmarks/.venv.
#   benchmarks/run.sh functions --rows 10000000
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p insightflow-server --bin insightflow
if [ ! -x benchmarks/.venv/bin/python ]; then
  python3 -m venv benchmarks/.venv
fi
benchmarks/.venv/bin/pip install -q -r benchmarks/requirements.txt
exec benchmarks/.venv/bin/python benchmarks/run.py "$@"
