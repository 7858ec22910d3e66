#!/usr/bin/env bash
# drift-injections.sh [CASES] [SEED]: drift's accuracy per kind of injected misconfiguration
# (bench/drift_accuracy.c) on fleets of 10-30 VMs built from real Debian 12 files
# (bench/fleet-bench.sh), with roles and labels recovered by the analysis.
exec bash "$(dirname "$0")/fleet-bench.sh" drift_accuracy "${1:-240}" "${2:-20261125}"
