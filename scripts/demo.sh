#!/usr/bin/env bash
# The README's main job: installs what vmscope needs (PostgreSQL 15 among it), builds it, builds
# a Debian 12 tree with debootstrap (once), and runs scripts/demo-run.sh on it: ten guests cloned
# from one base image on two hosts, each the real collectd with the three plugins on its own
# libvirt test-driver node, both publishing into one private PostgreSQL fleet store; the findings
# of both hosts, the one only the fleet view finds, the fleet's findings from the store, the
# roles, and the HTML report from the store (VS_DEMO_DIR, default /var/tmp/vmscope-demo).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
demo=${VS_DEMO_DIR:-/var/tmp/vmscope-demo}
bash "$top/scripts/install-deps.sh" demo
bash "$top/scripts/build.sh" build

base="$demo/base"
[ -f "$base/.vmscope-complete" ] || echo "demo: building a Debian 12 tree with debootstrap (once, about a minute)" >&2
bash "$top/scripts/debootstrap-tree.sh" "$base"
exec bash "$top/scripts/demo-run.sh" "$top/build" "$base" "$demo"
