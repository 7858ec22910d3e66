# t/lib/grafana_sql.sh: a Grafana dashboard's SQL (PostgreSQL data source), run without Grafana
# (not in Debian). Source it after t/lib/lib.sh; needs jq and psql. Grafana expands template
# variables and macros before the query reaches the database; this does the same for the small
# set contrib/grafana/vmscope-fleet.json keeps to, and refuses a query that has anything else:
#   ${NAME:sqlstring}          each value of variable NAME quoted as an SQL string ('' for '),
#                              joined with commas (Grafana's sqlstring format, single or multi)
#   $__interval                the range's interval, as GF_INTERVAL (e.g. 1m)
#   $__timeFilter(COL)         COL BETWEEN 'FROM' AND 'TO' (ISO 8601, UTC)
#   $__timeGroupAlias(COL, I)  floor(extract(epoch from COL)/S)*S AS "time", S = I in seconds
#                              (I: Ns, Nm, Nh or Nd, quoted or not); COL has no parentheses
#   $__timeFrom(), $__timeTo() 'FROM', 'TO'
# Use:
#   gf_set NAME VALUE...       set a variable (several values: a multi-value or "All" selection)
#   GF_FROM, GF_TO             the time range (epoch seconds); GF_INTERVAL (default 1m)
#   gf_expand SQL              print SQL with variables and macros expanded (1: something left)
#   GF_URL, GF_PASSWORD        the role the dashboard's data source logs in as (over TCP)
#   gf_run SQL                 expand SQL and run it through psql as that role, read-only:
#                              prints the header (tab-separated column names), the rows and a
#                              last line "(N rows)"; 1 on an error (printed on stderr)
#   gf_check WHAT SQL COLUMNS MIN   ok/not ok: SQL runs, its columns are COLUMNS (space-separated,
#                              in order) and it returns at least MIN rows; sets GF_ROWS (the
#                              rows, tab-separated) and GF_N (their count)
GF_VARS='{}'
GF_FROM=${GF_FROM:-$(($(date +%s) - 3600))}
GF_TO=${GF_TO:-$(date +%s)}
GF_INTERVAL=${GF_INTERVAL:-1m}
gf_set() { # NAME VALUE...
  local name=$1
  shift
  GF_VARS=$(jq -c --arg n "$name" '.[$n] = $ARGS.positional' --args "$@" <<<"$GF_VARS")
}
gf_expand() { # SQL
  jq -nre --arg sql "$1" --argjson vars "$GF_VARS" --arg interval "$GF_INTERVAL" \
    --arg from "$(date -u -d "@$GF_FROM" +%Y-%m-%dT%H:%M:%SZ)" \
    --arg to "$(date -u -d "@$GF_TO" +%Y-%m-%dT%H:%M:%SZ)" '
    def secs($n; $u): ($n | tonumber) * ({"s": 1, "m": 60, "h": 3600, "d": 86400}[$u]);
    def q: "\u0027" + gsub("\u0027"; "\u0027\u0027") + "\u0027";
    $sql
    | gsub("\\$\\{(?<n>[A-Za-z_][A-Za-z0-9_]*):sqlstring\\}";
           if $vars[.n] then ($vars[.n] | map(q) | join(",")) else "${" + .n + ":UNSET}" end)
    | gsub("\\$(__interval\\b|\\{__interval\\})"; $interval)
    | gsub("\\$__timeFilter\\(\\s*(?<c>[^(),]+?)\\s*\\)"; .c + " BETWEEN " + ($from | q) + " AND " + ($to | q))
    | gsub("\\$__timeGroupAlias\\(\\s*(?<c>[^(),]+?)\\s*,\\s*\u0027?(?<n>[0-9]+)(?<u>[smhd])\u0027?\\s*\\)";
           "floor(extract(epoch from " + .c + ")/" + (secs(.n; .u) | tostring) + ")*"
           + (secs(.n; .u) | tostring) + " AS \"time\"")
    | gsub("\\$__timeFrom\\(\\)"; $from | q)
    | gsub("\\$__timeTo\\(\\)"; $to | q)
    | if test("\\$[A-Za-z_{]") then ("gf_expand: not expanded: " + ([match("\\$[A-Za-z_{][^ ]*"; "g").string] | join(" ")) | halt_error(1))
      else . end'
}
gf_run() { # SQL
  local q
  q=$(gf_expand "$1") || return 1
  printf '%s\n' "$q" | PGPASSWORD=$GF_PASSWORD \
    psql -X -q -A -F $'\t' -P footer=on -v ON_ERROR_STOP=1 "$GF_URL" -f -
}
gf_check() { # WHAT SQL COLUMNS MIN
  local out header want
  GF_ROWS='' GF_N=0
  if ! out=$(gf_run "$2" 2>&1); then
    ok 1 "$1: the query runs"
    diag "$(printf '%s' "$out" | head -n 5)"
    return 1
  fi
  header=$(head -n 1 <<<"$out")
  want=$(tr ' ' '\t' <<<"$3")
  GF_N=$(tail -n 1 <<<"$out" | sed -n 's/^(\([0-9]*\) rows\?)$/\1/p')
  GF_ROWS=$(sed '1d;$d' <<<"$out")
  [ "$header" = "$want" ] && [ "${GF_N:-0}" -ge "$4" ]
  ok $? "$1: columns $3, $GF_N row(s) (at least $4)"
  [ "$header" = "$want" ] || diag "columns: $(tr '\t' ' ' <<<"$header")"
}
