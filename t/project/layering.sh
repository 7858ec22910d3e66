#!/usr/bin/env bash
# The core's folders point down only (docs/architecture.md): every #include "x.h" of a file in
# src/core/FOLDER names a header of FOLDER or of a folder FOLDER may use. A header found in no
# folder, or in two, is an error too (the include paths would pick one silently).
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
core=$VS_SRCDIR/src/core
declare -A uses=(
  [base]="base"
  [doc]="doc base"
  [hyper]="hyper doc base"
  [inspect]="inspect hyper doc base"
  [analyze]="analyze doc base"
  [fleet]="fleet analyze hyper doc base"
  [act]="act fleet inspect hyper doc base"
)
folders=$(cd "$core" && ls -d */ | tr -d /)
is "$(echo $folders | tr ' ' '\n' | sort | tr '\n' ' ')" "$(echo "${!uses[@]}" | tr ' ' '\n' | sort | tr '\n' ' ')" \
  "src/core holds exactly the folders of the plan"
is "$(find "$core" -maxdepth 1 -type f | wc -l)" 0 "and no module outside them"
declare -A home=()
dups=""
for f in "$core"/*/*.h; do
  h=$(basename "$f") d=$(basename "$(dirname "$f")")
  [ -n "${home[$h]:-}" ] && dups+=" $h"
  home[$h]=$d
done
is "$dups" "" "every header name is in one folder only"
for d in $folders; do
  bad=""
  for f in "$core/$d"/*.[ch]; do
    for h in $(grep -oE '^#include "[^"]+"' "$f" | sed 's/#include "//; s/"$//'); do
      [ "$h" = vs_config.h ] && continue # configure's, in the build tree: no module of any folder
      at=${home[$h]:-}
      if [ -z "$at" ]; then
        bad+=" $(basename "$f"):$h(nowhere)"
      elif ! [[ " ${uses[$d]} " == *" $at "* ]]; then
        bad+=" $(basename "$f"):$h($at)"
      fi
    done
  done
  is "$bad" "" "$d/ includes only ${uses[$d]// /, }"
done
# The check itself can fail: doc/pool.h is not among what base/ may use.
[[ " ${uses[base]} " == *" ${home[pool.h]} "* ]]
is $? 1 "an include of doc/pool.h from base/ would be refused"
done_testing
