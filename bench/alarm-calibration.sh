#!/usr/bin/env bash
# alarm-calibration.sh [SCALE] [SEED] [SIZES]: the alarm calibration benchmark
# (bench/alarm_calibration.c, issue 18) on fleets of 5 to 1,000 VMs and one host's VMs, built
# from real Debian 12 files (bench/fleet-bench.sh). SCALE multiplies the number of fleets and
# cases (0.25 for a quick look); SIZES is a comma list of rows ("5,8,host").
exec bash "$(dirname "$0")/fleet-bench.sh" alarm_calibration "${1:-1}" "${2:-20261202}" ${3:+"$3"}
