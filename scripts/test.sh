#!/usr/bin/env bash
# Installs dependencies, builds vmscope three times (plain, with ASan+UBSan, and for valgrind)
# and runs the whole TAP suite in each (the third under valgrind's memcheck). Ends with one
# line: "tests: N passed, N failed[, N skipped]".
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
fail_setup() {
  echo "test.sh: $1" >&2
  echo "tests: 0 passed, 1 failed"
  exit 1
}
bash scripts/install-deps.sh || fail_setup "installing dependencies failed"
export VS_DEBOOTSTRAP_CACHE=${VS_DEBOOTSTRAP_CACHE:-$top/build/t/cache/debootstrap}
# The booted guest of t/integration/guest*.sh (kernel, initramfs, base image), built once for the
# three suites.
export VS_GUEST_CACHE=${VS_GUEST_CACHE:-$top/build/t/cache/guest}
# float-cast-overflow is not part of GCC's "undefined": casting a huge double to int is how
# collectd's cf_util_get_int misbehaves (t/fuzz/config_drift).
san="-fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=undefined,float-cast-overflow -fno-omit-frame-pointer"
status=0
run_suite() { # DIR LABEL CONFIGURE-ARGS...
  local dir=$1 label=$2
  shift 2
  echo "== $label build ($dir)" >&2
  if ! bash scripts/build.sh "$dir" "$@"; then
    echo "test.sh: the $label build failed" >&2
    build_failures=$((build_failures + 1))
    return
  fi
  echo "== $label tests" >&2
  suite_start=$(date +%s)
  if ! (cd "$dir" && make -j2 check "${check_args[@]}") >"$dir/check.out" 2>&1; then
    status=1
    # A test program that does not compile leaves no .trs behind: count it, and show why.
    if ! grep -qsE '^:test-result: (FAIL|XPASS|ERROR)' "$dir"/t/*/*.trs; then
      echo "test.sh: $label: make check failed before any test failed:" >&2
      grep -E 'error|Error' "$dir/check.out" | head -n 20 >&2
      build_failures=$((build_failures + 1))
    fi
  fi
  slowest "$dir" "$label"
  for log in "$dir"/t/*/*.log; do
    [ -f "$log" ] || continue
    # A failure with the diagnostics its test printed after it (at most 25 lines), so that the
    # CI summary says why and not only what.
    awk -v tag="$label $(basename "$log" .log): " '
      /^(not ok|Bail out)/ { print tag $0; n = 25; next }
      /^(PASS|FAIL|XFAIL|XPASS|SKIP|ERROR): / { next } # the driver echoes each result line
      n > 0 && /^#/ { print tag "  " $0; n--; next }
      { n = 0 }' "$log" >&2 || true
  done
}
# slowest DIR LABEL: the suite's wall time and its ten slowest tests, from each log's birth and
# last write (what a CI run has to shorten first when it nears its time limit).
slowest() {
  local now=$(date +%s)
  echo "== $2 suite: $((now - suite_start)) s; slowest tests:" >&2
  for log in "$1"/t/*/*.log; do
    [ -f "$log" ] && stat -c '%W %Y %n' "$log"
  done | awk '$1 > 0 { printf "%6d s  %s\n", $2 - $1, $3 }' | sort -rn | head -n 10 >&2
}
# tests_but " SKIP... ": the suite's tests (the plain build's TESTS) but those named.
tests_but() {
  local t
  for t in $(cd build && printf 'print-tests:\n\t@echo $(TESTS)\n' | make -s -f Makefile -f - print-tests 2>/dev/null); do
    [[ $1 == *" $t "* ]] || echo "$t"
  done
}
build_failures=0
check_args=()
run_suite build plain
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export LSAN_OPTIONS=suppressions=$top/t/lib/lsan.supp # a library's own leaks, each said why
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Not in this suite: the real guest's live patch and fault cases (each holds the libvirtd lock
# for a minute or two, and the other QEMU tests wait for it). Their C paths run under ASan in
# patchset_libvirt.sh, patchset_qmp.sh, backup.sh and agent.sh, and the real guest's
# closed loop (guest_loop.sh: the plugins, the thaw wait, the retries) stays.
# Nor the benchmarks' smoke test (a minute of ranking synthetic fleets there; the ranking's C
# runs under ASan in t/unit/drift*, drift.sh and alarms.sh).
asan_tests=($(tests_but " t/integration/guest_patch.sh t/integration/guest_faults.sh t/integration/bench.sh "))
check_args=()
[ ${#asan_tests[@]} -gt 0 ] && check_args+=(TESTS="${asan_tests[*]}")
run_suite build-asan "ASan+UBSan" CFLAGS="-O1 -g $san" LDFLAGS="$san" VS_SANITIZED=1
unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS
# The third run: every test program, vmscope and collectd with our plugins under valgrind's
# memcheck (t/lib/valgrind.sh), which sees what ASan cannot: inside uninstrumented libraries,
# and leaks in collectd's plugins (ASan's leak check is off there). Each process that reports
# anything leaves a log; every one is a failure.
vglogs=$top/build-valgrind/valgrind-logs
rm -rf "$vglogs"
export VS_VALGRIND=1 VS_VG_LOGS=$vglogs
# Not in this suite: the careless-input files of the CLI (refusals of arguments and inputs,
# hundreds of short vmscope runs that the ASan suite, leak check on, already covers in our own
# code; under memcheck they took 9 of its 24 minutes of test time on a loaded machine).
# Nor the fleet store's equivalence test (three collectd snapshotting nine guests, and the
# Grafana SQL: 4 minutes under memcheck); its store and plugin paths run under memcheck in
# t/integration/fleet_security.sh, and the ASan suite runs it whole.
# Nor the real guest's tests (an emulated guest takes a core while memcheck's tests share the
# other: a fleet_tls etcd request timed out beside it; the loop, patch and faults take minutes
# per case there); the vmscope and plugin paths they use run under memcheck in backup.sh,
# agent.sh, action_rules.sh and patchset_libvirt.sh.
# Nor XFS on LVM (two appliance launches; fs_xfs.c and lvm.c run under memcheck in fuzz.sh's
# replay_xfs and replay_lvm).
vg_skip=" t/integration/xfs_lvm.sh t/integration/careless_drift.sh t/integration/careless_inspect.sh t/integration/careless_patchset.sh t/integration/fleet_store.sh t/integration/guest.sh t/integration/guest_loop.sh t/integration/guest_patch.sh t/integration/guest_faults.sh "
vg_tests=($(tests_but "$vg_skip"))
check_args=(LOG_COMPILER="$top/t/lib/valgrind.sh")
[ ${#vg_tests[@]} -gt 0 ] && check_args+=(TESTS="${vg_tests[*]}")
run_suite build-valgrind "valgrind" CFLAGS="-O1 -g"
unset VS_VALGRIND
vg_reports=0
for log in "$vglogs"/*.log; do
  # Not a report: valgrind 3.19 (Debian 12's) does not know cachestat (Linux 6.5), which
  # vs_page_cached asks first; it answers ENOSYS, and vmscope asks mincore, as on an older kernel.
  [ -f "$log" ] && sed -i '/WARNING: unhandled amd64-linux syscall: 451$/,+4d' "$log"
  [ -s "$log" ] || continue
  vg_reports=$((vg_reports + 1))
  [ $vg_reports -le 3 ] && { echo "valgrind: $log:" && grep -m 12 -E '==[0-9]+== +(at|by) 0x|Invalid|uninitialised|lost in loss record' "$log"; } >&2
done
[ $vg_reports -eq 0 ] || echo "test.sh: valgrind reported on $vg_reports process(es) (logs in $vglogs)" >&2
passed=0 failed=$build_failures skipped=0
for trs in build/t/*/*.trs build-asan/t/*/*.trs build-valgrind/t/*/*.trs; do
  [ -f "$trs" ] || continue
  passed=$((passed + $(grep -c '^:test-result: PASS' "$trs" || true)))
  passed=$((passed + $(grep -c '^:test-result: XFAIL' "$trs" || true)))
  failed=$((failed + $(grep -cE '^:test-result: (FAIL|XPASS|ERROR)' "$trs" || true)))
  skipped=$((skipped + $(grep -c '^:test-result: SKIP' "$trs" || true)))
done
failed=$((failed + vg_reports))
[ "$failed" -eq 0 ] || status=1
if [ "$skipped" -gt 0 ]; then
  echo "tests: $passed passed, $failed failed, $skipped skipped"
else
  echo "tests: $passed passed, $failed failed"
fi
exit $status
