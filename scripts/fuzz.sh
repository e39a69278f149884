#!/usr/bin/env bash
# Builds the fuzz targets and runs the start-up decoder target for a bounded time.
#
#   scripts/fuzz.sh [SECONDS]      (default 30)
#
# cargo fuzz needs a nightly toolchain (rustup toolchain install nightly) and installs
# cargo-fuzz from crates.io when it is missing. pg_session_message is built but not run:
# it finds a known pgwire 0.41 panic at once (see its header).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: no nightly toolchain; install one with: rustup toolchain install nightly" >&2
  exit 1
fi
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --quiet

cargo +nightly fuzz build --fuzz-dir fuzz pg_startup_message
cargo +nightly fuzz build --fuzz-dir fuzz pg_session_message
cargo +nightly fuzz run --fuzz-dir fuzz pg_startup_message -- -max_total_time="$seconds"
