#!/usr/bin/env bash
# drift-accuracy.sh [SCALE] [SEED] [SIZES]: whether drift's alarms mean the same on 5 VMs and on
# 1,000 (bench/alarm_calibration.c): per fleet size (5, 8, 12, 20, 50, 200, 1,000 and one
# host's VMs alone), how often one injected misconfiguration is ranked first and alarmed, how
# many VMs of clean fleets alarm, and the group findings, on fleets built from real Debian 12
# files (bench/fleet-bench.sh). SCALE multiplies the number of fleets and cases (0.25 for a
# quick look); SIZES is a comma list of rows ("5,8,host").
exec bash "$(dirname "$0")/fleet-bench.sh" alarm_calibration "${1:-1}" "${2:-20261202}" ${3:+"$3"}
