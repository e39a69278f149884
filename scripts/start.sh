#!/usr/bin/env bash
# Builds InsightFlow and starts it with the demo data set.
#
#   ./scripts/start.sh                 # debug build: fastest to build (~5 min)
#   PROFILE=release ./scripts/start.sh # optimized: slow to build, fast queries
#
# Connect with:  psql -h 127.0.0.1 -p 5433 -U admin -d insightflow
# The admin password is INSIGHTFLOW_ADMIN_PASSWORD, or the one written to
# ./insightflow-data/admin.password on first start. Extra flags go to `serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cc >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq build-essential
fi
profile="${PROFILE:-dev}"
cargo build --profile "$profile" --bin insightflow
dir=debug; [ "$profile" = dev ] || dir="$profile"
exec "./target/$dir/insightflow" serve --demo "$@"
