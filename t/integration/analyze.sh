#!/usr/bin/env bash
# vmscope analyze and vmscope similar on guest trees of three roles (web servers, databases,
# plain hosts), and on a snapshot pool with a VM that changed since its last snapshot.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
work=$(tmpdir)
trap 'rm -rf "$work"' EXIT
mk() { mkdir -p "$(dirname "$1")" && printf '%b' "$2" >"$1"; }
names=()
for i in 1 2 3 4 5 6 7 8 9; do
  role=$(case $((i % 3)) in 0) echo web ;; 1) echo db ;; *) echo plain ;; esac)
  n=$role-$i
  names+=("$n")
  t=$work/trees/$n
  mk "$t/etc/os-release" 'ID=debian\nVERSION_ID="12"\n'
  mk "$t/etc/hostname" "$n\n"
  mk "$t/etc/ssh/sshd_config" 'Port 22\nUsePAM yes\n'
  mk "$t/etc/sysctl.d/50-base.conf" 'kernel.sysrq = 0\n'
  status='Package: openssh-server\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:9.2p1-2+deb12u3\n'
  case $role in
  web)
    mk "$t/etc/nginx/nginx.conf" 'user www-data;\nworker_processes auto;\n'
    mk "$t/etc/sysctl.d/60-web.conf" 'net.core.somaxconn = 4096\nnet.ipv4.tcp_fin_timeout = 15\n'
    status+='\nPackage: nginx\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.22.1-9\n\nPackage: nginx-common\nStatus: install ok installed\nArchitecture: all\nVersion: 1.22.1-9\n'
    ;;
  db)
    mk "$t/etc/sysctl.d/60-db.conf" 'vm.dirty_ratio = 5\nvm.swappiness = 1\n'
    status+='\nPackage: mariadb-server\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:10.11.6-0+deb12u1\n\nPackage: mariadb-common\nStatus: install ok installed\nArchitecture: all\nVersion: 1:10.11.6-0+deb12u1\n'
    ;;
  esac
  mk "$t/var/lib/dpkg/status" "$status"
  "$VMSCOPE" inspect "$t" >"$work/$n.json" 2>/dev/null || bail "vmscope inspect $t failed"
done
docs=("${names[@]/#/$work/}")
docs=("${docs[@]/%/.json}")
"$VMSCOPE" analyze "${docs[@]}" >"$work/a.json"
ok $? "vmscope analyze reads nine documents"
is "$(jq '.roles | length' "$work/a.json")" 3 "it finds three roles, without being told how many"
is "$(jq -r '[.vms[] | {r: .role, k: (.name | split("-")[0])}] | group_by(.r) | map(map(.k) | unique | length) | max' "$work/a.json")" 1 \
  "each role holds VMs of one kind only"
is "$(jq -r '[.vms[] | .similarity] | min' "$work/a.json")" 1 "all alike within their roles (similarity 1)"
printf 'web-3 web\ndb-1 db  # a comment\n\nplain-2 plain\n' >"$work/labels"
"$VMSCOPE" analyze --labels "$work/labels" "${docs[@]}" >"$work/l.json"
is "$(jq -r '[.vms[] | select((.name | split("-")[0]) == .label)] | length' "$work/l.json")" 9 \
  "with one VM of each role labelled, every VM gets its role's label"
p=$(jq -r '.vms[] | select(.name == "web-6") | .label_probability' "$work/l.json")
awk -v p="$p" 'BEGIN { exit !(p > 0.8 && p < 1) }'; ok $? "with a probability from the votes of the nearest labelled VMs ($p)"
printf 'web-3\n' >"$work/bad-labels"
"$VMSCOPE" analyze --labels "$work/bad-labels" "${docs[@]}" >/dev/null 2>"$work/bad.err"
is $? 2 "a labels line without a label is a usage error"
grep -q 'bad-labels:1: expected "NAME LABEL"' "$work/bad.err"; ok $? "saying where: $(cat "$work/bad.err")"
"$VMSCOPE" analyze --format text "${docs[@]}" | head -n1 | grep -qx '9 VMs, 3 roles'; ok $? "--format text"

"$VMSCOPE" similar --top 3 web-3 "${docs[@]}" >"$work/s.json"
is "$(jq -r '[.[].name | split("-")[0]] | unique | join(",")' "$work/s.json")" web "vmscope similar web-3: its three most similar are web servers"
is "$(jq -r '.[0].name' "$work/s.json")" web-3 "itself first"
"$VMSCOPE" similar --top 1 --setting 'sysctl:vm.dirty_ratio=5' "${docs[@]}" | jq -r '.[0].name' | grep -q '^db-'
ok $? "ranked by a setting: a database first"
"$VMSCOPE" similar nosuch "${docs[@]}" >/dev/null 2>&1; is $? 1 "an unknown VM is an error"

# A pool: each VM's newest document, and for web-3 an older one that differs: its anomaly.
for n in "${names[@]}"; do
  uuid=$(printf '00000000-0000-4000-8000-%012d' "$(echo "$n" | tr -dc 0-9)")
  mkdir -p "$work/pool/$uuid"
  jq --arg id "$uuid" --arg n "$n" '.id = $id | .name = $n | .taken_at = "2026-11-25T10:00:00Z"' "$work/$n.json" >"$work/pool/$uuid/20261125T100000Z.json"
done
old=$work/pool/00000000-0000-4000-8000-000000000003
jq '.taken_at = "2026-11-24T10:00:00Z" | .settings |= with_entries(select(.key | test("nginx|somaxconn|fin_timeout") | not))
    | .provenance |= (with_entries(.value |= map(select(test("nginx|somaxconn|fin_timeout") | not))) | with_entries(select(.value | length > 0)))
    | del(.defaults)' \
  "$old/20261125T100000Z.json" >"$old/20261124T100000Z.json"
"$VMSCOPE" analyze --pool "$work/pool" >"$work/p.json"
ok $? "vmscope analyze --pool reads the pool"
is "$(jq '.vms | length' "$work/p.json")" 9 "nine VMs, each once"
a3=$(jq -r '.vms[] | select(.name == "web-3") | .anomaly' "$work/p.json")
a6=$(jq -r '.vms[] | select(.name == "web-6") | .anomaly' "$work/p.json")
awk -v a="$a3" -v b="$a6" 'BEGIN { exit !(a > 0.3 && b == 0) }'
ok $? "web-3, which became a web server since its last snapshot, is anomalous ($a3; web-6: $a6)"
done_testing
