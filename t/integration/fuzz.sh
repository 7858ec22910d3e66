#!/usr/bin/env bash
# The fuzz targets (fuzz/), built with fuzz/replay.c instead of libFuzzer, run over the seed
# corpora fuzz/seeds.sh makes from real images and replies, and over every input a fuzzing
# run ever found a bug with (t/fuzz/TARGET/: crashes, hangs, sanitizer reports, each fixed).
# Under the ASan+UBSan build this is where those bugs would come back. bench/fuzz.sh fuzzes.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
work=$(tmpdir)
trap 'rm -rf "$work"' EXIT
bash "$VS_SRCDIR/fuzz/seeds.sh" "$work/seeds" "$VMSCOPE" >"$work/seeds.log" 2>&1
ok $? "fuzz/seeds.sh makes the seed corpora: $(tail -n 10 "$work/seeds.log" | tr '\n' ' ')"
for t in qcow2 direct ntfs xfs lvm vhdx vmdk hive feature drift agent etcd config_snapshot config_drift config_action; do
  dirs=("$work/seeds/$t")
  past=0
  if [ -d "$VS_SRCDIR/t/fuzz/$t" ]; then
    dirs+=("$VS_SRCDIR/t/fuzz/$t")
    past=$(find "$VS_SRCDIR/t/fuzz/$t" -type f | wc -l)
  fi
  n=$(find "${dirs[@]}" -type f | wc -l)
  timeout 1200 "${VS_RUN[@]}" "$VS_BUILDDIR/t/fuzz/replay_$t" "${dirs[@]}" >"$work/$t.out" 2>&1
  rc=$?
  ok $rc "fuzz_$t replays its $n inputs ($past past findings)"
  [ $rc = 0 ] || { grep -E 'not ok|ERROR|runtime error' "$work/$t.out" | head -n 5 | sed 's/^/# /'; tail -n 3 "$work/$t.out" | sed 's/^/# /'; }
done
done_testing
