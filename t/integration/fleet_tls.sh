#!/usr/bin/env bash
# The fleet store over TLS with client certificates: a real etcd that refuses clients without
# a certificate its CA signed; the proxy and the sender get through with --cacert/--cert/--key.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
command -v etcd >/dev/null && command -v qemu-ga >/dev/null && command -v openssl >/dev/null ||
  { skip 1 "etcd, qemu-ga or openssl is not installed"; done_testing; exit $?; }
work=$(tmpdir)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
cd "$work" || bail "no work directory"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=vmscope-test-ca 2>/dev/null
for who in server client; do
  openssl req -newkey rsa:2048 -nodes -keyout $who.key -out $who.csr -subj /CN=$who 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >$who.ext
  openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $who.pem -days 2 -extfile $who.ext 2>/dev/null
done
[ -s client.pem ] && [ -s server.pem ]; ok $? "a CA, a server and a client certificate are made"
port=$((31000 + $$ % 1000 * 2))
store=https://127.0.0.1:$port
etcd --name t1 --data-dir etcd --listen-client-urls "$store" --advertise-client-urls "$store" \
  --cert-file server.pem --key-file server.key --client-cert-auth --trusted-ca-file ca.pem \
  --listen-peer-urls "http://127.0.0.1:$((port + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((port + 1))" \
  --initial-cluster "t1=http://127.0.0.1:$((port + 1))" >etcd.log 2>&1 &
pids+=($!)
tls=(--cacert ca.pem --cert client.pem --key client.key)
# Each store request has 5 s; a TLS handshake under valgrind on a loaded machine can take
# longer: the first answer counts (a bounded number of tries, no sleep tuned to speed).
reached=1
for _ in $(seq 1 100); do "$VMSCOPE" fleet ls --store "$store" "${tls[@]}" >/dev/null 2>ls.err && { reached=0; break; }; sleep 0.1; done
ok $reached "vmscope fleet ls reaches etcd over TLS with a client certificate"
[ $reached = 0 ] || diag "$(tail -n 2 ls.err)"
"$VMSCOPE" fleet ls --store "$store" --cacert ca.pem >ls-nocert.out 2>&1
is $? 1 "without the client certificate etcd refuses"
qemu-ga -m unix-listen -p "$work/qga.sock" -t "$work" -b guest-shutdown,guest-exec >qga.log 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do [ -S "$work/qga.sock" ] && break; sleep 0.1; done
"$VMSCOPE" fleet proxy --store "$store" "${tls[@]}" --host h1 --vm "00000000-0000-4000-8000-0000000000d1:tls-01:unix:$work/qga.sock" >proxy.log 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do "$VMSCOPE" fleet ls --store "$store" "${tls[@]}" 2>/dev/null | grep -q tls-01 && break; sleep 0.1; done
# guest-ping may be answered twice if a try times out after it was placed: harmless, and a
# failed try is tried again for at most 90 s (under memcheck on a loaded machine one try's etcd
# requests over TLS timed out three times in a row).
answer=""
deadline=$(($(date +%s) + 90))
while :; do
  answer=$("$VMSCOPE" send --store "$store" "${tls[@]}" --compact tls-01 '{"execute":"guest-ping"}' 2>send.err) && break
  [ "$(date +%s)" -lt "$deadline" ] || break
done
is "$answer" "{}" "a message routed over TLS is answered"
[ "$answer" = "{}" ] || diag "$(tail -n 2 send.err)"
done_testing
