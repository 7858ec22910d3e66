#!/usr/bin/env bash
# Alarms that mean the same thing on 5 VMs and on 30 (issue 18), with the real collectd and the
# three plugins (vmscope_snapshot on guest trees, vmscope_drift, vmscope_action with a dry-run
# rule on config_drift warnings):
# (a) 5 VMs of 3 roles (3 web, 1 db, 1 app), web-03 with PermitRootLogin yes: web-03 alone gets
#     a config_drift WARNING naming the key, with its evidence; db-01 and app-01, each alone of
#     its kind, get one informational "unique" notification and no config_drift, no anomaly.
# (b) 30 clones with a team's tweak (vm.swappiness = 10) on 3: one config_group notification
#     naming the three, no config_drift.
# (c) openssl upgraded on 10, then 20, then all 30 VMs: rollout notifications only (no
#     config_drift, no majority_change).
# Each fleet's pool is filled by vmscope_snapshot alone first, so that vmscope_drift never
# ranks a half-written pool (3 of 30 VMs, 2 of them tweaked, would be a fleet of its own).
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
. "$VS_SRCDIR/t/lib/collectd.sh"
[ -x "$COLLECTD" ] || bail "collectd is not installed (scripts/install-deps.sh installs it)"
command -v jq >/dev/null || bail "jq is not installed"
work=$(tmpdir)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
chmod 755 "$work" # the notification script runs as nobody

mk() { mkdir -p "$(dirname "$1")" && printf '%b' "$2" >"$1"; }
pkgs() { # TREE NAME VERSION...
  local t=$1
  shift
  while [ $# -gt 1 ]; do
    printf 'Package: %s\nStatus: install ok installed\nArchitecture: amd64\nVersion: %s\n\n' "$1" "$2" >>"$t/var/lib/dpkg/status"
    shift 2
  done
}
base() { # TREE
  mk "$1/etc/os-release" 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
  mk "$1/etc/ssh/sshd_config" 'PermitRootLogin prohibit-password\nPort 22\nUsePAM yes\nX11Forwarding yes\n'
  mk "$1/etc/passwd" 'root:x:0:0:root:/root:/bin/bash\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n'
  mk "$1/etc/group" 'root:x:0:\n'
  mk "$1/etc/sysctl.d/50-base.conf" 'kernel.sysrq = 0\nvm.swappiness = 60\n'
  mkdir -p "$1/var/lib/dpkg"
  pkgs "$1" openssh-server 1:9.2p1-2+deb12u3 openssl 3.0.14-1~deb12u2 bash 5.2.15-2+b2
}
role_web() {
  mk "$1/etc/nginx/nginx.conf" 'user www-data;\nworker_processes auto;\npid /run/nginx.pid;\n'
  mk "$1/etc/sysctl.d/60-web.conf" 'net.core.somaxconn = 4096\nnet.ipv4.tcp_tw_reuse = 1\n'
  printf 'www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n' >>"$1/etc/passwd"
  pkgs "$1" nginx 1.22.1-9 nginx-common 1.22.1-9 php8.2-fpm 8.2.20-1~deb12u1 php8.2-common 8.2.20-1~deb12u1 certbot 2.1.0-4
}
role_db() {
  mk "$1/etc/postgresql/15/main/postgresql.conf" "listen_addresses = '*'\nmax_connections = 200\nshared_buffers = 2GB\nwork_mem = 16MB\nmaintenance_work_mem = 512MB\neffective_cache_size = 6GB\nwal_level = replica\nmax_wal_size = 4GB\nrandom_page_cost = 1.1\n"
  mk "$1/etc/sysctl.d/60-db.conf" 'vm.overcommit_memory = 2\nvm.dirty_ratio = 10\n'
  printf 'postgres:x:110:118:PostgreSQL administrator:/var/lib/postgresql:/bin/bash\n' >>"$1/etc/passwd"
  pkgs "$1" postgresql-15 15.7-0+deb12u1 postgresql-client-15 15.7-0+deb12u1 postgresql-common 248 libpq5 15.7-0+deb12u1
}
role_app() {
  mk "$1/etc/default/app" 'APP_WORKERS=8\nAPP_ENV=prod\nAPP_PORT=8080\n'
  mk "$1/etc/redis/redis.conf" 'bind 127.0.0.1\nport 6379\nmaxmemory 1gb\nmaxmemory-policy allkeys-lru\nappendonly yes\n'
  mk "$1/etc/sysctl.d/60-app.conf" 'fs.file-max = 1000000\nnet.core.netdev_max_backlog = 5000\n'
  printf 'app:x:1001:1001::/srv/app:/usr/sbin/nologin\nredis:x:111:119::/var/lib/redis:/usr/sbin/nologin\n' >>"$1/etc/passwd"
  pkgs "$1" redis-server 5:7.0.15-1~deb12u1 redis-tools 5:7.0.15-1~deb12u1 openjdk-17-jre-headless 17.0.11+9-1~deb12u1
}
# (a) 5 VMs of 3 roles
for n in web-01 web-02 web-03 db-01 app-01; do
  base "$work/a/trees/$n"
  mk "$work/a/trees/$n/etc/hostname" "$n\n"
  "role_${n%-*}" "$work/a/trees/$n"
done
mk "$work/a/trees/web-03/etc/ssh/sshd_config" 'PermitRootLogin yes\nPort 22\nUsePAM yes\nX11Forwarding yes\n'
# (b) 30 web VMs, hard-linked copies of one tree but for their hostnames and the team's tweak
base "$work/b/proto"
role_web "$work/b/proto"
vms30=()
for i in $(seq -w 1 30); do
  t=$work/b/trees/vm-$i
  vms30+=("vm-$i")
  mkdir -p "$work/b/trees" && cp -al "$work/b/proto" "$t"
  mk "$t/etc/hostname" "vm-$i\n"
done
for i in 03 07 11; do mk "$work/b/trees/vm-$i/etc/sysctl.d/70-team.conf" 'vm.swappiness = 10\n'; done

mkdir -m 0777 "$work/a/notes" "$work/b/notes"
cat >"$work/notify.sh" <<'EOF'
#!/bin/sh
cat >"$1/$(date +%s%N).$$"
EOF
chmod 755 "$work/notify.sh"
plugindir=$(vs_plugin_dir "$work")
ok $? "make install into a staging root"
vs_collectd_env

# start FLEET WHAT: collectd on FLEET's trees with vmscope_snapshot alone (WHAT=snapshot) or
# with the three plugins (all); its pid in $pid.
start() {
  local d=$work/$1 trees= t
  for t in "$d"/trees/*; do trees+="  Tree \"${t##*/}\" \"$t\""$'\n'; done
  mkdir -p "$d/$2"
  {
    vs_collectd_conf "$d/$2" "$plugindir" "$d/$2.log"
    cat <<CONF
LoadPlugin vmscope_snapshot
<Plugin vmscope_snapshot>
$trees
  DataDir "$d/pool"
  Interval 1
</Plugin>
CONF
    [ "$2" = all ] && cat <<CONF
LoadPlugin exec
<Plugin exec>
  NotificationExec "nobody" "$work/notify.sh" "$d/notes"
</Plugin>
LoadPlugin vmscope_drift
<Plugin vmscope_drift>
  DataDir "$d/pool"
  Interval 1
  ResendInterval 1
</Plugin>
LoadPlugin vmscope_action
<Plugin vmscope_action>
  <Rule "page">
    Match Plugin "vmscope_drift" Type "config_drift" Severity "warning"
    Action "webhook" "http://127.0.0.1:1/page"
    DryRun true
  </Rule>
</Plugin>
CONF
  } >"$d/$2.conf"
  "${VS_COLLECTD_ENV[@]}" "$COLLECTD" -f -C "$d/$2.conf" >"$d/$2.out" 2>&1 &
  pid=$!
}
stop() { kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=; }
pooled() { # FLEET COUNT: every VM of the fleet has a document in the pool
  [ "$(find "$work/$1/pool" -mindepth 2 -name '*.json' -printf '%h\n' 2>/dev/null | sort -u | wc -l)" -ge "$2" ]
}
# fill FLEET COUNT: the pool holds every VM before vmscope_drift first reads it.
fill() {
  start "$1" snapshot
  wait_for 120 pooled "$1" "$2"
  ok $? "vmscope_snapshot writes the $2 VMs of fleet $1 into the pool"
  stop
}
# The notifications as the logfile plugin writes them, and as the exec plugin hands them over
# (headers, meta, a blank line, the message).
notes() { grep -a 'Notification: ' "$work/$1/all.log" 2>/dev/null | grep -a "plugin = $2, " | grep -a "type = $3, " || true; }
count() { notes "$@" | wc -l; }
note_files() { # FLEET TYPE [PLUGIN-INSTANCE]
  local f
  for f in "$work/$1"/notes/*; do
    [ -f "$f" ] || continue
    grep -qx "Type: $2" "$f" || continue
    [ -z "${3:-}" ] || grep -qx "PluginInstance: $3" "$f" || continue
    echo "$f"
  done
}
# note_has FLEET TYPE PLUGIN-INSTANCE LINE...: a note of TYPE has every LINE (the exec plugin
# writes it from a process of its own, a moment after the logfile line)
note_has() {
  local fleet=$1 type=$2 inst=$3 f l
  shift 3
  for f in $(note_files "$fleet" "$type" "$inst"); do
    for l in "$@"; do grep -qxF "$l" "$f" || continue 2; done
    return 0
  done
  return 1
}
csv_last() { tail -qn1 "$work/$1"/all/csv/vstest/"$2"-* 2>/dev/null | tail -n1 | cut -d, -f2; }

# ------------------------------------------------------------------- (a) 5 VMs of 3 roles
fill a 5
start a all
web03() { notes a vmscope_drift config_drift | grep -a 'severity = WARNING' | grep -a 'plugin_instance = web-03, '; }
wait_for 60 web03 >/dev/null
ok $? "web-03, the one web server of three that permits root logins, raises a config_drift WARNING"
web03 | head -n1 | grep -qa 'type_instance = sshd_config.PermitRootLogin, message = PermitRootLogin is yes on web-03; its 2 close peers all have prohibit-password (alone among them: p = 0.33, score 0.67, rank 1)'
ok $? "naming the key, with its evidence: $(web03 | head -n1 | grep -ao 'message = .*')"
unique_of() { notes a vmscope_drift unique | grep -a "plugin_instance = $1, "; }
wait_for 30 unique_of db-01 >/dev/null && wait_for 30 unique_of app-01 >/dev/null
ok $? "db-01 and app-01, each alone of its kind, get a \"unique\" notification: $(unique_of db-01 | head -n1 | grep -ao 'message = .*')"
unique_of db-01 | head -n1 | grep -qa 'severity = OKAY, .*message = db-01 is unique: it has no close peers to be compared with among the fleet.s 5 VMs'
ok $? "it is an OKAY saying why and how many VMs the fleet has"
wait_for 10 note_has a unique db-01 'severity: info' 'unique: true' 'vms: 5'
ok $? "with meta severity info, unique true and the fleet's size"
rounds() { [ "$(web03 | wc -l)" -ge "$1" ]; }
wait_for 30 rounds 4
ok $? "ResendInterval 1 sends web-03's alarm again: more rounds have run ($(web03 | wc -l) sends)"
is "$(notes a vmscope_drift config_drift | grep -aoE 'plugin_instance = [^,]*, type = config_drift, type_instance = [^,]*' | sort -u)" \
  "plugin_instance = web-03, type = config_drift, type_instance = sshd_config.PermitRootLogin" \
  "it is the only config_drift: the lone db and app VMs raise none"
is "$(notes a vmscope_drift anomaly | grep -ac 'plugin_instance = \(db-01\|app-01\), ')" 0 "and no anomaly notification"
is "$(count a vmscope_drift unique)" 2 "one unique notification each, and none for the web servers"
is "$(csv_last a vmscope_drift-web-03/count-alarms)" 1.000000 "count-alarms is 1 for web-03"
is "$(csv_last a vmscope_drift-web-03/count-failures)" 0.000000 "count-failures 0: alone among 2 peers is a warning"
awk -v s="$(csv_last a vmscope_drift-web-03/gauge-drift_score)" 'BEGIN { exit !(s > 0.66 && s < 0.67) }'
ok $? "gauge-drift_score is its alarm's score, 1 - 1/3 ($(csv_last a vmscope_drift-web-03/gauge-drift_score))"
is "$(csv_last a vmscope_drift-db-01/gauge-unique) $(csv_last a vmscope_drift-web-01/gauge-unique)" "1.000000 0.000000" \
  "gauge-unique is 1 for db-01, 0 for web-01"
is "$(csv_last a vmscope_drift-db-01/count-alarms)" 0.000000 "and db-01 counts no alarm"
is "$(count a vmscope_drift config_group)" 0 \
  "no group: the lone VMs of their kinds share what they lack, which is no team's tweak" ||
  notes a vmscope_drift config_group | head -n1 | grep -ao 'message = .*' | sed 's/^/# /'
dry() { grep -a 'rule "page" (dry run): would run webhook' "$work/a/all.log"; }
dry | grep -qa 'on web-03' && ! dry | grep -qav 'on web-03'
ok $? "vmscope_action's rule on config_drift warnings acts on web-03 alone ($(dry | wc -l) dry runs)"
stop
# collectd calls shutdown callbacks in LoadPlugin order (exec's, loaded first, frees what its
# notification callback reads): the three plugins' threads stop before any, between the read
# threads' stop and the write threads'.
halted() {
  awk '/collectd: Stopping [0-9]+ read threads/ { r = 1 } /collectd: Stopping [0-9]+ write threads/ { exit }
    r && /: its threads have stopped: collectd is shutting down/ { sub(/.*\] /, ""); sub(/:.*/, ""); print }' \
    "$work/a/all.log" | sort | tr '\n' ' '
}
is "$(halted)" "vmscope_action vmscope_drift vmscope_snapshot " \
  "at shutdown the plugins' threads stop after collectd's read threads, before its write threads and any plugin's shutdown"

# ----------------------------------------------- (b) a team's tweak, (c) a rollout: 30 VMs
fill b 30
start b all
group() { notes b vmscope_drift config_group | grep -a 'severity = WARNING'; }
wait_for 60 group >/dev/null
ok $? "the team's tweak on 3 of 30 VMs raises a config_group notification"
group | head -n1 | grep -qaE 'plugin = vmscope_drift, type = config_group, type_instance = sysctl.vm.swappiness, message = (sysctl:)?vm.swappiness is 10 on 3 of 30 VMs: vm-03, vm-07, vm-11; 27 of the rest have 60'
ok $? "the fleet's (no plugin instance), naming the three: $(group | head -n1 | grep -ao 'message = .*')"
wait_for 10 note_has b config_group "" 'members: vm-03, vm-07, vm-11' 'key: sysctl:vm.swappiness' 'rest: 60'
ok $? "meta names the key, the members and the rest's value"
groups_is() { [ "$(csv_last b vmscope_drift/count-groups)" = "$1" ]; }
wait_for 10 groups_is 1.000000
ok $? "count-groups is 1 (the fleet's, no plugin instance)"

status_of() { echo "$work/b/trees/vm-$1/var/lib/dpkg/status"; }
upgrade() { # FIRST LAST: a new status file, renamed into place (the hard link is left)
  local i
  for i in $(seq -w "$1" "$2"); do
    sed 's/3\.0\.14-1~deb12u2/3.0.15-1~deb12u1/' "$(status_of "$i")" >"$(status_of "$i").new" &&
      mv "$(status_of "$i").new" "$(status_of "$i")"
  done
}
rollout() { notes b vmscope_drift rollout | grep -aq "$1"; }
upgrade 01 10
wait_for 30 rollout 'message = openssl 3.0.15-1~deb12u1 on 10 of 30 VMs (33%), from 3.0.14-1~deb12u2'
ok $? "openssl upgraded on 10 of 30 VMs: a rollout notification with its share"
notes b vmscope_drift rollout | head -n1 | grep -qa 'severity = OKAY, host = vstest, plugin = vmscope_drift, type = rollout, type_instance = pkg.openssl'
ok $? "informational (OKAY), the fleet's"
wait_for 10 note_has b rollout "" 'severity: info' 'by: version'; ok $? "meta severity info, by version"
rollouts_is() { [ "$(csv_last b vmscope_drift/count-rollouts)" = "$1" ]; }
wait_for 10 rollouts_is 1.000000; ok $? "count-rollouts is 1"
upgrade 11 20
wait_for 30 rollout 'message = openssl 3.0.15-1~deb12u1 on 20 of 30 VMs (67%), from 3.0.14-1~deb12u2'
ok $? "on 20 of 30: the rollout's new share"
upgrade 21 30
wait_for 30 rollout 'message = openssl 3.0.15-1~deb12u1: the rollout is complete (30 of 30 VMs have it)'
ok $? "on all 30: the rollout is complete"
wait_for 10 rollouts_is 0.000000; ok $? "count-rollouts is 0 again"
is "$(count b vmscope_drift config_drift)" 0 "no config_drift on any VM, through the tweak and the whole rollout"
is "$(count b vmscope_drift majority_change)" 0 "no majority_change: the rollout moved openssl's majority, and says so itself"
is "$(notes b vmscope_drift rollout | grep -avc 'severity = OKAY')" 0 "every rollout notification is informational ($(count b vmscope_drift rollout) of them)"
is "$(count b vmscope_drift config_group)" 1 "and the group was notified once, and still stands" ||
  notes b vmscope_drift config_group | sed 's/^/# /'
is "$(count b vmscope_drift unique)" 0 "no VM of the 30 is unique"
# The role analysis sees a package in several versions by its presence (fleetview.h): a
# rollout half done is not two roles, nor an anomaly of each VM that took it.
is "$(count b vmscope_drift anomaly) $(count b vmscope_drift role_change)" "0 0" \
  "the rollout raised no anomaly and no role_change notification" ||
  { notes b vmscope_drift anomaly; notes b vmscope_drift role_change; } | sed 's/^/# /'
! grep -qa 'rule "page"' "$work/b/all.log"; ok $? "vmscope_action had nothing to act on"
stop
grep -aE 'AddressSanitizer|runtime error' "$work"/*/*.out >&2
is $? 1 "no sanitizer report"
done_testing
