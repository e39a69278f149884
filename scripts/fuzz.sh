#!/usr/bin/env bash
# Builds the fuzz targets and runs each for a bounded time: the pg start-up decoder,
# the session messages (the server's check in front of pgwire's decoders) and the SQL
# rewrite.
#
#   scripts/fuzz.sh [SECONDS]      (default 30, per target)
#
# cargo fuzz needs a nightly toolchain (rustup toolchain install nightly) and installs
# cargo-fuzz from crates.io when it is missing.
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
cargo +nightly fuzz build --fuzz-dir fuzz sql_rewrite
cargo +nightly fuzz run --fuzz-dir fuzz pg_startup_message -- -max_total_time="$seconds"
cargo +nightly fuzz run --fuzz-dir fuzz pg_session_message -- -max_total_time="$seconds"

# The SQL target starts from every statement the captured clients send (tests/compat/).
corpus=fuzz/corpus/sql_rewrite
mkdir -p "$corpus"
if [ -x .venv/bin/python ]; then
  .venv/bin/python - "$corpus" <<'EOF'
import hashlib, pathlib, sys
sys.path.insert(0, "tests/python")
from compat_replay import all_sessions
out = pathlib.Path(sys.argv[1])
for steps in all_sessions().values():
    for step in steps:
        data = b"\x00" + step.sql.encode()
        (out / hashlib.sha1(data).hexdigest()).write_bytes(data)
print(f"fuzz: seeded {len(list(out.iterdir()))} statements from tests/compat")
EOF
else
  echo "fuzz: no .venv (scripts/test.sh makes it): sql_rewrite starts without the client statements" >&2
fi
cargo +nightly fuzz run --fuzz-dir fuzz sql_rewrite "$corpus" -- -max_total_time="$seconds"
