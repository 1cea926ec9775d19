#!/usr/bin/env bash
# One command for the test suite: set up what is missing, then build and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh debug --tests
swift build --build-tests
swift test
