#!/usr/bin/env bash
# The drift benchmarks still run and print their tables (small sizes; the figures themselves
# are the benchmarks' business, not the tests').
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
work=$(tmpdir)
trap 'rm -rf "$work"' EXIT

out=$("$VS_BUILDDIR/bench/drift_scale" 400 300 2); rc=$?
ok $rc "drift_scale runs (400 documents x 300 keys)"
echo "$out" | grep -qE '^ +400 docs x 300 keys: build [0-9.]+ s'; ok $? "and prints the build time"
echo "$out" | grep -qE 'rank one target: median [0-9.]+ ms.*rank all 400: [0-9.]+ s.*peak RSS [0-9]+ MiB'
ok $? "the ranking times and the peak RSS"

base=${VS_DEBOOTSTRAP_CACHE:-$VS_BUILDDIR/t/cache/debootstrap}/root
if ! bash "$VS_SRCDIR/scripts/debootstrap-tree.sh" "$base" >"$work/deboot.log" 2>&1; then
  skip 3 "no debootstrap tree could be built: $(tail -n 1 "$work/deboot.log")"
  done_testing
  exit $?
fi
if ! bash "$VS_SRCDIR/bench/fleet-roles.sh" "$base" "$VS_BUILDDIR/bench/cache" >"$work/roles.log" 2>&1; then
  skip 3 "the role packages could not be fetched: $(tail -n 1 "$work/roles.log")"
  done_testing
  exit $?
fi
ok 0 "role trees of real Debian packages are built"
cp -a "$VS_BUILDDIR/bench/cache/roles" "$work/roles"
"$VS_BUILDDIR/bench/drift_accuracy" "$work/roles" "$work/fleets" 12 7 >"$work/acc.out" 2>"$work/acc.err"
ok $? "drift_accuracy runs 12 cases"
for kind in "changed value" "uid-0 user" "disabled service" "downgraded pkg" "weakened mode" "added sysctl"; do
  grep -qE "^$kind +[0-9]+ " "$work/acc.out"; ok $? "its table has a row for $kind"
done
grep -qE '^clean fleets: [0-9]+ VMs' "$work/acc.out"; ok $? "and the clean-fleet alarm line"
"$VS_BUILDDIR/bench/alarm_calibration" "$work/roles" "$work/fleets2" 0.05 7 5,12,host >"$work/cal.out" 2>"$work/cal.err"
ok $? "alarm_calibration (bench/drift-accuracy.sh) runs three sizes"
for row in "5" "12" "one host \\(4-8 of 60\\)"; do
  grep -qE "^\\| $row \\| [0-9]+ \\| [0-9]+ \\| [0-9]+% \\| [0-9]+% \\| [0-9]+% \\|" "$work/cal.out"
  ok $? "its table has a row for $row with rank 1, top 3 and alarmed"
done
grep -qE '\| [0-9]+ in [0-9]+ fleets' "$work/cal.out"; ok $? "and the group findings of clean fleets"
done_testing
