#!/usr/bin/env bash
# fuzz.sh [SECONDS [TARGET...]]: builds the libFuzzer targets (clang, ASan+UBSan, build-fuzz/)
# and runs each for SECONDS (default 600) from the seed corpora fuzz/seeds.sh makes, one job
# at a time. Prints, per target, the runs, executions per second, coverage and what it found;
# a crashing input lands in build-fuzz/crashes/TARGET/ and belongs in t/fuzz/TARGET/ once the
# bug is fixed (t/integration/fuzz.sh replays that directory in every test run). Exit status 1 when any
# target found something.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(qcow2 direct ntfs xfs lvm feature drift agent etcd config_snapshot config_drift config_action)
dir=${VS_FUZZ_BUILDDIR:-$top/build-fuzz}
command -v clang >/dev/null && [ -n "$(find /usr/lib/llvm-*/lib/clang -name 'libclang_rt.fuzzer-x86_64.a' 2>/dev/null | head -n1)" ] || {
  echo "fuzz: clang and libclang-rt-*-dev are needed (scripts/install-deps.sh installs them)" >&2
  exit 2
}
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
if [ ! -f "$dir/Makefile" ]; then
  [ -x "$top/configure" ] || (cd "$top" && autoreconf -fi >/dev/null)
  mkdir -p "$dir"
  (cd "$dir" && "$top/configure" -q CC=clang CFLAGS="-O1 -g $san -fsanitize=fuzzer-no-link" LDFLAGS="$san")
fi
echo "fuzz: building the targets in $dir" >&2
env -u MAKEFLAGS make -s -C "$dir" -j2 fuzz >"$dir/fuzz-build.log" 2>&1 || { tail -n 30 "$dir/fuzz-build.log" >&2; exit 2; }
[ -x "$dir/vmscope" ] || env -u MAKEFLAGS make -s -C "$dir" -j2 vmscope >/dev/null
if [ ! -f "$dir/seeds/.complete" ]; then
  rm -rf "$dir/seeds"
  bash "$top/fuzz/seeds.sh" "$dir/seeds" "$dir/vmscope" >/dev/null 2>"$dir/seeds.log"
  touch "$dir/seeds/.complete"
fi
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
found=0
printf '%-16s %10s %10s %8s %8s  %s\n' target seconds runs exec/s cov found
for t in "${targets[@]}"; do
  mkdir -p "$dir/corpus/$t" "$dir/crashes/$t"
  bin=$dir/fuzz/fuzz_$t
  start=$(date +%s)
  dirs=("$dir/corpus/$t" "$dir/seeds/$t")
  [ -d "$top/t/fuzz/$t" ] && dirs+=("$top/t/fuzz/$t")
  "$bin" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 -max_len=1048576 -print_final_stats=1 \
    -artifact_prefix="$dir/crashes/$t/" "${dirs[@]}" >"$dir/fuzz-$t.log" 2>&1 || true
  took=$(($(date +%s) - start))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/fuzz-$t.log" | tail -n1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/fuzz-$t.log" | tail -n1)
  cov=$( (grep -oE 'cov: [0-9]+' "$dir/fuzz-$t.log" || true) | tail -n1 | cut -d' ' -f2)
  crashes=$(find "$dir/crashes/$t" -type f | wc -l)
  what=none
  if [ "$crashes" -gt 0 ]; then
    found=1
    what="$crashes input(s) in $dir/crashes/$t: $( (grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error' "$dir/fuzz-$t.log" || true) | cut -c1-120)"
  fi
  printf '%-16s %10s %10s %8s %8s  %s\n' "$t" "$took" "${runs:-?}" "${rate:-?}" "${cov:-?}" "$what"
done
exit $found
