#!/usr/bin/env bash
# The README's main job: installs what vmscope needs (PostgreSQL 15 among it), builds it, builds
# a Debian 12 tree with debootstrap (once), and runs scripts/demo-run.sh on it: ten guests cloned
# from one base image on two hosts, each the real collectd with the three plugins on its own
# libvirt test-driver node, both publishing into one private PostgreSQL fleet store; the findings
# of both hosts, the one only the fleet view finds, the fleet's findings from the store, the
# roles, and the HTML report from the store (VS_DEMO_DIR, default /var/tmp/vmscope-demo).
# With --real-guests it installs what a real guest needs instead of PostgreSQL and runs
# scripts/demo-real.sh: the closed loop on real running guests under a private libvirtd.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
demo=${VS_DEMO_DIR:-/var/tmp/vmscope-demo}
usage() {
  cat <<USAGE
Usage: scripts/demo.sh [--real-guests]
As root on Debian 12: installs what the demo needs (scripts/install-deps.sh), builds vmscope
into build/, builds a Debian 12 tree with debootstrap once (in VS_DEMO_DIR, default
/var/tmp/vmscope-demo), and runs the demo on it:
  (no option)     ten guests' disk images on two hosts, each a real collectd with the three
                  plugins on libvirt's test driver (no guest runs), one PostgreSQL fleet store:
                  the findings of both hosts, the one only the fleet view has, the HTML report
                  (scripts/demo-run.sh)
  --real-guests   the closed loop on real running guests (scripts/demo-real.sh): builds a small
                  guest once (the host's kernel, a busybox initramfs with qemu-ga, the tree as
                  its disk), boots two under a private libvirtd beside eight stopped domains of
                  their shape, runs the real collectd with the three plugins on them, writes
                  PermitRootLogin yes inside one running guest, and prints the snapshot that
                  reads it, the config_drift alarm, the fix run inside the guest by its agent
                  and the OKAY, with their times; everything it started is stopped at the end
  -h, --help      this help
USAGE
}
real=
while [ $# -gt 0 ]; do
  case $1 in
  --real-guests)
    [ -z "$real" ] || { echo "demo.sh: --real-guests given twice: give it once" >&2 && exit 2; }
    real=1
    ;;
  -h | --help)
    usage
    exit 0
    ;;
  *)
    echo "demo.sh: unknown option \"$1\"" >&2
    echo "Usage: scripts/demo.sh [--real-guests] (scripts/demo.sh --help says what each does)" >&2
    exit 2
    ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || { echo "demo.sh: run it as root: it installs packages with apt-get, and starts daemons that run as their own users" >&2 && exit 1; }

bash "$top/scripts/install-deps.sh" "$([ -n "$real" ] && echo real-guests || echo demo)"
bash "$top/scripts/build.sh" build

base="$demo/base"
[ -f "$base/.vmscope-complete" ] || echo "demo: building a Debian 12 tree with debootstrap (once, about a minute)" >&2
bash "$top/scripts/debootstrap-tree.sh" "$base"
[ -z "$real" ] || exec bash "$top/scripts/demo-real.sh" "$top/build" "$base" "$demo"
exec bash "$top/scripts/demo-run.sh" "$top/build" "$base" "$demo"
