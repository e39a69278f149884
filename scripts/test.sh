#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine.
#
# Installs what is missing (psql, python3-venv, node, a JDK and pgjdbc; the Python clients
# in .venv, node-postgres in tests/node), builds the
# workspace once, then runs: Rust unit and end-to-end tests (cargo nextest, or cargo test
# without it), the sqllogictest files in-process and over pgwire, and the Python client
# tests (psycopg, asyncpg, SQLAlchemy, pandas, ADBC Flight SQL, and through them psql,
# node-postgres and pgjdbc, a moto S3 server and Azurite) against the real binary, and the
# fuzz targets (pg start-up packets, pg session messages, SQL rewrites) for 30 s each when
# a nightly toolchain is present.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

missing=()
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
command -v javac >/dev/null 2>&1 || missing+=(default-jdk-headless)
[ -f /usr/share/java/postgresql.jar ] || missing+=(libpostgresql-jdbc-java)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install Rust (https://rustup.rs) first" >&2; exit 1; }

log "python clients (.venv)"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r tests/python/requirements.txt

log "node-postgres (tests/node)"
(cd tests/node && npm ci --no-audit --no-fund --silent)

log "build (one build for every test)"
cargo build --workspace --all-targets --locked

log "rust: unit and end-to-end tests"
if cargo nextest --version >/dev/null 2>&1; then
  # The sqllogictest runner has its own main (harness = false): it runs below.
  cargo nextest run --workspace --locked --no-fail-fast -E 'not binary(sqllogictests)'
else
  cargo test --workspace --locked --no-fail-fast --lib --bins --test e2e
fi

log "sqllogictest: in-process and over pgwire"
cargo test --workspace --locked --test sqllogictests

log "fuzz: pg start-up packets, pg session messages, SQL rewrites, 30 s each (cargo fuzz, nightly)"
if cargo +nightly --version >/dev/null 2>&1; then
  scripts/fuzz.sh 30
else
  echo "fuzz: NOT RUN: this machine has no nightly toolchain (rustup toolchain install nightly)" >&2
fi

log "python clients against the real server"
set +e
INSIGHTFLOW_BIN="$PWD/target/debug/insightflow" .venv/bin/python -m pytest tests/python -q
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure, not a pass" >&2
  exit 1
fi
exit "$rc"
