#!/usr/bin/env bash
# The main job: set up what is missing, then run `pyro demo` (pull debian:12, seed the sample
# repo into a workspace, run its tests, show the result, delete the workspace).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec node bin/pyro.js demo "$@"
