#!/usr/bin/env bash
# The test suite: set up what is missing, then run every unit and integration test against
# real sandboxes. The first run builds the debian:12 test environment (about a minute).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec npx vitest run "$@"
