#!/usr/bin/env bash
# Routed messages through a real etcd and the real qemu-ga: the fleet map, a proxy agent per
# host, pending messages across a proxy restart (none lost, none answered twice), and a VM
# that moves to another host while a message waits.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
command -v etcd >/dev/null && command -v qemu-ga >/dev/null || { skip 1 "etcd or qemu-ga is not installed"; done_testing; exit $?; }
work=$(tmpdir)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
port=$((26000 + $$ % 1000 * 2))
store=http://127.0.0.1:$port
etcd --name n1 --data-dir "$work/etcd" --listen-client-urls "$store" --advertise-client-urls "$store" \
  --listen-peer-urls "http://127.0.0.1:$((port + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((port + 1))" \
  --initial-cluster "n1=http://127.0.0.1:$((port + 1))" >"$work/etcd.log" 2>&1 &
pids+=($!)
qemu-ga -m unix-listen -p "$work/qga.sock" -t "$work" -b guest-shutdown,guest-exec,guest-file-open,guest-file-write,guest-set-time >"$work/qga.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -s -X POST "$store/v3/kv/range" -d '{"key":"AA=="}' >/dev/null 2>&1 && [ -S "$work/qga.sock" ] && break; sleep 0.1; done
vm=00000000-0000-4000-8000-0000000000f1
# A dead proxy's VMs leave the map after this. The three senders below must place their
# messages within it (a sender that finds no host for the VM waits for one instead): 3 s was
# too short on a machine loaded tenfold.
lease=10
[ "${VS_VALGRIND:-}" = 1 ] && lease=30 # senders under memcheck start slower than that
proxy() { # HOST -> starts a proxy for HOST mapping the VM; prints its pid
  "$VMSCOPE" fleet proxy --store "$store" --host "$1" --lease "$lease" --vm "$vm:web-01:unix:$work/qga.sock" >>"$work/proxy-$1.log" 2>&1 &
  echo $!
}
send() { "$VMSCOPE" send --store "$store" --compact "$@"; }
long=30 # how long a sender waits for a proxy that is down or moving
[ "${VS_VALGRIND:-}" = 1 ] && long=120
p1=$(proxy h1); pids+=($p1)
for _ in $(seq 1 50); do "$VMSCOPE" fleet ls --store "$store" 2>/dev/null | grep -q web-01 && break; sleep 0.1; done
"$VMSCOPE" fleet ls --store "$store" >"$work/ls.out"; ok $? "vmscope fleet ls reads the map"
grep -qE "^$vm +h1 +web-01 +unix:" "$work/ls.out"; ok $? "the proxy on h1 mapped web-01 there"

is "$(send web-01 '{"execute":"guest-ping"}')" "{}" "a routed guest-ping reaches the agent through h1's proxy and answers"
is "$(send "$vm" '{"execute":"guest-get-osinfo"}' | jq -r .id)" debian "by uuid too, with the agent's reply"
send web-01 '{"execute":"guest-exec","arguments":{"path":"/bin/true"}}' >"$work/refused.out" 2>&1
is $? 1 "a command the proxy does not allow fails"
grep -q refused "$work/refused.out"; ok $? "and says refused: $(cat "$work/refused.out")"
send web-99 '{"execute":"guest-ping"}' >"$work/none.out" 2>&1
grep -q not_configured "$work/none.out"; ok $? "a VM not in the map is not_configured"

# The proxy goes away with messages pending: they wait, and are answered once it is back.
kill "$p1"; wait "$p1" 2>/dev/null
for i in 1 2 3; do send --timeout "$long" web-01 '{"execute":"guest-ping"}' >"$work/pending-$i.out" 2>&1 & done
pending() { curl -s -X POST "$store/v3/kv/range" -d "{\"key\":\"$(printf /vmscope/inbox/h1/ | base64)\",\"range_end\":\"$(printf /vmscope/inbox/h10 | base64)\",\"count_only\":true}" | jq -r '.count // "0"'; }
three_pending() { [ "$(pending)" = 3 ]; }
wait_for 20 three_pending
is "$(pending)" 3 "three messages wait in h1's inbox while its proxy is down"
p1=$(proxy h1); pids+=($p1)
wait $(jobs -p | grep -v -x -e "$p1" -e "${pids[0]}" -e "${pids[1]}") 2>/dev/null
ok=0
for i in 1 2 3; do [ "$(cat "$work/pending-$i.out")" = "{}" ] && ok=$((ok + 1)); done
is $ok 3 "the restarted proxy delivers all three"
[ $ok = 3 ] || for i in 1 2 3; do diag "sender $i: $(head -c 300 "$work/pending-$i.out")"; done
n=$(curl -s -X POST "$store/v3/kv/range" -d "{\"key\":\"$(printf /vmscope/ | base64)\",\"range_end\":\"$(printf /vmscope0 | base64)\",\"keys_only\":true}" | jq -r '[.kvs[]?.key | @base64d | select(startswith("/vmscope/inbox/") or startswith("/vmscope/replies/"))] | length')
is "$n" 0 "and nothing is left pending or unanswered (each answered once)"

# h1 dies; web-01 comes up on h2 while a message waits in h1's inbox.
kill -9 "$p1"; wait "$p1" 2>/dev/null
send --timeout "$long" web-01 '{"execute":"guest-ping"}' >"$work/moved.out" 2>&1 &
sender=$!
sleep 1
p2=$(proxy h2); pids+=($p2)
wait "$sender"; ok $? "a message sent while web-01 moved from a dead h1 to h2 is answered"
is "$(cat "$work/moved.out")" "{}" "through h2's proxy"
"$VMSCOPE" fleet ls --store "$store" | grep -qE "^$vm +h2 "; ok $? "and the map says h2"
done_testing
