#!/usr/bin/env bash
# Installs dependencies, builds vmscope twice (plain, and with ASan+UBSan) and runs the whole
# TAP suite in both. Ends with one line: "tests: N passed, N failed[, N skipped]".
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
  if ! (cd "$dir" && make -j2 check) >"$dir/check.out" 2>&1; then
    status=1
    # A test program that does not compile leaves no .trs behind: count it, and show why.
    if ! grep -qsE '^:test-result: (FAIL|XPASS|ERROR)' "$dir"/t/*.trs; then
      echo "test.sh: $label: make check failed before any test failed:" >&2
      grep -E 'error|Error' "$dir/check.out" | head -n 20 >&2
      build_failures=$((build_failures + 1))
    fi
  fi
  for log in "$dir"/t/*.log; do
    [ -f "$log" ] || continue
    grep -E '^(not ok|Bail out)' "$log" | sed "s|^|$label $(basename "$log" .log): |" >&2 || true
  done
}
build_failures=0
run_suite build plain
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_suite build-asan "ASan+UBSan" CFLAGS="-O1 -g $san" LDFLAGS="$san" VS_SANITIZED=1
passed=0 failed=$build_failures skipped=0
for trs in build/t/*.trs build-asan/t/*.trs; do
  [ -f "$trs" ] || continue
  passed=$((passed + $(grep -c '^:test-result: PASS' "$trs" || true)))
  passed=$((passed + $(grep -c '^:test-result: XFAIL' "$trs" || true)))
  failed=$((failed + $(grep -cE '^:test-result: (FAIL|XPASS|ERROR)' "$trs" || true)))
  skipped=$((skipped + $(grep -c '^:test-result: SKIP' "$trs" || true)))
done
[ "$failed" -eq 0 ] || status=1
if [ "$skipped" -gt 0 ]; then
  echo "tests: $passed passed, $failed failed, $skipped skipped"
else
  echo "tests: $passed passed, $failed failed"
fi
exit $status
