#!/usr/bin/env bash
# fleet-scale.sh [HOSTS,HOSTS,...] [VMS] [KEYS]: the fleet store (PostgreSQL) at fleet scale
# (bench/fleet_scale.c), by default 10, 30 and 100 hosts of 100 VMs with KEYS settings each:
# a host's round (publish, fleet read, ranking its VMs, its findings), the elected host's
# refresh, the store's size and PostgreSQL's CPU per round, with the growth per 10x hosts and
# an extrapolation to 1,000 hosts (or the figures measured there, when 1,000 is the last size:
# `100,1000 100 2000` takes about 30 minutes and 17 GiB); against PostgreSQL's own COPY of the
# same rows, in the same run. Starts a private PostgreSQL 15 (t/lib/postgres.sh: as root, run by the postgres user,
# fsync off), and stops it by its pid.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${VS_BUILDDIR:-$top/build}
sizes=${1:-10,30,100}
vms=${2:-100}
keys=${3:-500}
[ -x "$build/bench/fleet_scale" ] || { bash "$top/scripts/build.sh" "$build" && make -C "$build" bench/fleet_scale >/dev/null; }
. "$top/t/lib/postgres.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/vs-fleet-scale-XXXXXX")
cleanup() {
  vs_pg_stop
  rm -rf "$work"
}
trap cleanup EXIT
vs_pg_start "$work/pg" || { echo "fleet-scale: $VS_PG_WHY" >&2; exit 1; }
vs_pg_role vmscope 'fleet-scale'
vs_pg_sql -c 'ALTER ROLE vmscope CREATEDB CREATEROLE' -c 'GRANT pg_checkpoint TO vmscope' >/dev/null
printf 'fleet-scale\n' >"$work/password"
chmod 600 "$work/password"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo);" \
  "$(vs_pg_sql -c 'SELECT version()' | cut -d' ' -f1-2), shared_buffers" \
  "$(vs_pg_sql -c 'SHOW shared_buffers'), fsync $(vs_pg_sql -c 'SHOW fsync'), over TCP loopback"
# Other work on the machine shares its cores with the client and the server: said before and after.
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$build/bench/fleet_scale" "postgresql://vmscope@127.0.0.1:$VS_PG_PORT/" "$work/password" "$VS_PG_PID" "$vms" "$keys" "$sizes"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 minutes)"
