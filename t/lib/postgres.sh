# t/lib/postgres.sh: a private PostgreSQL 15 server for the fleet store's tests. Source it, then:
#   vs_pg_start DIR   initdb a cluster in DIR/data and start it, listening on a unix socket in
#                     DIR/sock and on a free loopback port; sets VS_PG_PID, VS_PG_PORT, VS_PG_SOCK and
#                     VS_PG_ADMIN (a superuser conninfo for the test itself, no dbname).
#   vs_pg_sql ARGS    psql as that superuser on VS_PG_DB (default postgres) Returns 1 with
#                     VS_PG_WHY set when it cannot (not installed, not root).
#                     With VS_PG_TLS=DIR (server.crt and server.key in it), TCP is TLS only.
#   vs_pg_role NAME PASSWORD   a login role (scram-sha-256 over TCP)
#   vs_pg_store OWNER PWFILE   a fleet store: database OWNER, owned by the login role OWNER
#                     (CREATEROLE: the schema makes its group roles) whose password is
#                     PWFILE's first line; the SQL goes to psql on its standard input, so no
#                     password is on a command line
#   vs_pg_url NAME    the URL a role connects with over TCP (the password goes in a file)
#   vs_pg_stop        stop it by its pid and wait for it
# PostgreSQL refuses to run as root: the server runs as the "postgres" user that Debian's
# postgresql-common makes, from DIR (made readable to it).
VS_PG_PID=
vs_pg_start() {
  local dir=$1 bin=/usr/lib/postgresql/15/bin
  VS_PG_WHY=
  [ "$(id -u)" = 0 ] || { VS_PG_WHY="not root"; return 1; }
  [ -x "$bin/postgres" ] && [ -x "$bin/initdb" ] && getent passwd postgres >/dev/null ||
    { VS_PG_WHY="PostgreSQL 15 (postgresql-15) is not installed"; return 1; }
  mkdir -p "$dir/data" "$dir/sock"
  chmod 755 "$dir"
  chmod a+x "$(dirname "$dir")" # the server reaches DIR through it
  chown postgres: "$dir/data" "$dir/sock"
  chmod 700 "$dir/data"
  setpriv --reuid=postgres --regid=postgres --init-groups "$bin/initdb" -D "$dir/data" -U vsadmin \
    -A trust --no-sync >"$dir/initdb.log" 2>&1 || { VS_PG_WHY="initdb failed: $(tail -n1 "$dir/initdb.log")"; return 1; }
  # The superuser by the socket only; every other role by password over TCP, as hosts do (and
  # with VS_PG_TLS, a directory holding server.crt and server.key, over TLS only).
  local tcp=host ssl=()
  if [ -n "${VS_PG_TLS:-}" ]; then
    install -o postgres -m 600 "$VS_PG_TLS/server.crt" "$VS_PG_TLS/server.key" "$dir/data/"
    tcp=hostssl ssl=(-c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key)
  fi
  cat >"$dir/data/pg_hba.conf" <<HBA
local all vsadmin trust
local all all scram-sha-256
$tcp all all 127.0.0.1/32 scram-sha-256
HBA
  local try
  for try in 1 2 3 4 5; do
    VS_PG_PORT=$((30000 + (RANDOM % 15000)))
    setpriv --reuid=postgres --regid=postgres --init-groups "$bin/postgres" -D "$dir/data" \
      -k "$dir/sock" -p "$VS_PG_PORT" -c listen_addresses=127.0.0.1 -c fsync=off \
      -c synchronous_commit=off -c full_page_writes=off "${ssl[@]}" >"$dir/postgres.log" 2>&1 &
    VS_PG_PID=$!
    VS_PG_SOCK=$dir/sock
    VS_PG_ADMIN="host=$dir/sock port=$VS_PG_PORT user=vsadmin"
    local t=240
    while [ $t -gt 0 ] && kill -0 "$VS_PG_PID" 2>/dev/null; do
      vs_pg_sql -c 'SELECT 1' >/dev/null 2>&1 && return 0
      sleep 0.25
      t=$((t - 1))
    done
    kill "$VS_PG_PID" 2>/dev/null
    wait "$VS_PG_PID" 2>/dev/null
    VS_PG_PID=
    grep -q "could not bind\|already in use" "$dir/postgres.log" || break # not a port taken
  done
  VS_PG_WHY="postgres did not start: $(tail -n2 "$dir/postgres.log" | tr '\n' ' ')"
  return 1
}
# vs_pg_sql [-c SQL | ...]: psql as the superuser, on database VS_PG_DB (default postgres)
vs_pg_sql() { psql -qAtX -v ON_ERROR_STOP=1 "$VS_PG_ADMIN dbname=${VS_PG_DB:-postgres}" "$@"; }
vs_pg_role() { # NAME PASSWORD (by psql's standard input, on no command line)
  printf 'CREATE ROLE "%s" LOGIN PASSWORD \x27%s\x27;\n' "$1" "${2//\'/\'\'}" | vs_pg_sql >/dev/null
}
vs_pg_store() { # OWNER PWFILE
  local pw
  IFS= read -r pw <"$2" || [ -n "$pw" ] || return 1
  vs_pg_role "$1" "$pw" && vs_pg_sql -c "ALTER ROLE \"$1\" CREATEROLE" -c "CREATE DATABASE \"$1\" OWNER \"$1\"" >/dev/null
}
vs_pg_url() { echo "postgresql://$1@127.0.0.1:$VS_PG_PORT/${2:-postgres}"; }
vs_pg_stop() {
  [ -n "$VS_PG_PID" ] || return 0
  kill -INT "$VS_PG_PID" 2>/dev/null # fast shutdown
  wait "$VS_PG_PID" 2>/dev/null
  VS_PG_PID=
}
