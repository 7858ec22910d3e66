#!/usr/bin/env bash
# drift-accuracy.sh [CASES] [SEED]: the drift accuracy benchmark (bench/drift_accuracy.c) on
# fleets built from real Debian 12 files (bench/fleet-bench.sh).
exec bash "$(dirname "$0")/fleet-bench.sh" drift_accuracy "${1:-240}" "${2:-20261125}"
