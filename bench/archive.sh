#!/usr/bin/env bash
# Archiving benchmark against pgBackRest async, with an S3 store on
# 127.0.0.1 (bench/s3server over TLS) answering at once and with DELAY ms
# added to every request, as a distant store would.
#
# (a) Burst: a real PostgreSQL writes a burst of WAL (pgbench -i -s SCALE,
#     then LOAD_SECS of write-heavy pgbench) while archiving through
#     walden standalone (`wal-push %p`), walden with its agent
#     (WALDEN_PUSH_AHEAD=on), and pgBackRest archive-push with
#     archive-async=y and process-max 2 and 4 (lz4 level 1 everywhere).
#     Per case: the time from the end of the load until caught up, the peak
#     number of .ready files (sampled every 100 ms), CPU seconds per segment
#     and archive_command's per-call wall time (p50, p99).
#     Caught up: no .ready is left for any segment before the one current at
#     the end of the load. Each tool's archive_command succeeds only once
#     the segment is in the store, so from then on the store holds every
#     such segment; the script then lists the store and fails if one is
#     missing.
#     CPU: user+sys of every archive_command call (a wrapper records bash's
#     `times` of its child), plus the agent's process, or pgBackRest's
#     async and local worker processes (read from /proc every 100 ms, the
#     last reading of each process counted), over the segments archived.
#     The S3 server's own CPU is shown apart.
#     Then, in the same cluster, a held backlog: archive_command emptied (and
#     the agent stopped) during HOLD_SECS more of pgbench, then restored (the
#     agent started just before): the time to drain it, as after an outage.
# (b) PITR replay: a base copy, then at least PITR_SEGS segments of pgbench
#     WAL archived; PostgreSQL recovers all of them from the base copy (start
#     to promotion) with restore_command `cp` from a file copy of the
#     archive (baseline), walden wal-fetch -p 8 standalone and through its
#     agent, and pgBackRest archive-get without and with archive-async=y.
#     Also one wal-fetch call against `curl | lz4 -dc` of the same object
#     (gofakes3 serves unsigned GETs), median of FETCH_REPEAT, without an
#     agent and through one (-p 0: the agent fetches when asked).
#
# Usage: sudo bench/archive.sh   (needs postgresql-15, pgbackrest, lz4, curl)
# Knobs: SCALE (default 40), LOAD_SECS (20), HOLD_SECS (20; 0 skips the
# held backlog), CLIENTS (4), DELAYS ("0 200", milliseconds), PITR_SEGS
# (64), REPLAYS ("walden agent pgbr": which restore_commands part b runs
# besides cp), FETCH_REPEAT (7; 0 skips the single-fetch comparison), PARTS ("ab": part a, b or both), PORT, S3PORT,
# METRICSPORT, LOGDIR (keeps the agent's log, metrics and PostgreSQL's log
# of each agent replay there); any WALDEN_* variable set is passed to walden (the agent
# always gets WALDEN_PUSH_AHEAD=on).
set -euo pipefail
SCALE=${SCALE:-40}
LOAD_SECS=${LOAD_SECS:-20}
HOLD_SECS=${HOLD_SECS:-20}
PARTS=${PARTS:-ab}
CLIENTS=${CLIENTS:-4}
DELAYS=${DELAYS:-"0 200"}
PITR_SEGS=${PITR_SEGS:-64}
REPLAYS=${REPLAYS:-walden agent pgbr}
FETCH_REPEAT=${FETCH_REPEAT:-7}
PORT=${PORT:-25997}
S3PORT=${S3PORT:-29124}
METRICSPORT=${METRICSPORT:-29125}
export LC_ALL=C
top=$(cd "$(dirname "$0")/.." && pwd)
bindir=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -1)
for t in pgbackrest lz4 curl; do
  command -v "$t" >/dev/null || { echo "bench/archive.sh: $t is not installed" >&2; exit 1; }
done
work=$(mktemp -d /tmp/walden-archbench.XXXXXX)
chmod 755 "$work"
s3pid="" agentpid="" samplerpid=""
# setpriv, not runuser: no PAM session, and the measured process is the tool.
aspg=(setpriv --reuid=postgres --regid=postgres --init-groups --)
as_pg() { "${aspg[@]}" "$@"; }
stop_pid() { # kill one process this script started, and reap it
  [ -n "$1" ] || return 0
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
# pgBackRest's async processes detach from archive-push; they are found by
# this run's configuration path, which nothing else uses.
pgbr_pids() { pgrep -f -- "--config=$work/" || true; }
cleanup() {
  set +e
  stop_pid "$samplerpid"; stop_pid "$agentpid"
  for d in "$work"/*/PG_VERSION; do
    [ -f "$d" ] && as_pg "$bindir/pg_ctl" -D "$(dirname "$d")" -m immediate stop >/dev/null 2>&1
  done
  for p in $(pgbr_pids); do kill "$p" 2>/dev/null; done
  stop_pid "$s3pid"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
now() { echo "$EPOCHREALTIME"; }
psql_() { as_pg "$bindir/psql" -X -A -t -q -h "$work/sock" -p "${2:-$PORT}" -U postgres -d postgres -c "$1"; }

echo "building walden and the S3 server"
# As the package installs it: the front as walden, the full program beside
# it as walden-core and the WAL program as walden-wal (the front finds both
# there).
(cd "$top" && CGO_ENABLED=0 go build -o "$work/walden" ./cmd/walden-front && CGO_ENABLED=0 go build -tags disable_grpc_modules -o "$work/walden-core" ./cmd/walden &&
  CGO_ENABLED=0 go build -tags walden_wal -o "$work/walden-wal" ./cmd/walden && go build -o "$work/s3server" ./bench/s3server)
chmod 755 "$work/walden"
mkdir -p "$work/sock" "$work/tls" "$work/lock" "$work/filestore" "$work/logs"
chown postgres "$work/sock" "$work/lock" "$work/filestore" "$work/logs"
cert=$work/tls/cert.pem
# walden (the AWS SDK) and curl trust the server's certificate through these.
tlsenv=(AWS_CA_BUNDLE="$cert" CURL_CA_BUNDLE="$cert")

start_s3() { # DELAY_MS: a fresh, empty store (memory stays bounded per case)
  stop_pid "$s3pid"; s3pid=
  rm -f "$cert"
  "$work/s3server" -addr "127.0.0.1:$S3PORT" -bucket bench -delay "${1}ms" -tls "$work/tls" > "$work/s3.log" 2>&1 &
  s3pid=$!
  for _ in $(seq 100); do grep -q listening "$work/s3.log" && [ -f "$cert" ] && return 0; sleep 0.05; done
  cat "$work/s3.log" >&2; echo "s3server did not start" >&2; exit 1
}
s3_cpu() { awk '{print $14+$15}' "/proc/$s3pid/stat"; }
s3_keys() { # PREFIX: every key under it (the segment names in them)
  local token="" out
  while :; do
    out=$(curl -sf --cacert "$cert" "https://127.0.0.1:$S3PORT/bench?list-type=2&prefix=$1${token:+&continuation-token=$token}")
    { grep -o '<Key>[^<]*</Key>' <<<"$out" || true; } | sed 's/<[^>]*>//g'
    token=$(grep -o '<NextContinuationToken>[^<]*' <<<"$out" | sed 's/.*>//' || true)
    [ -n "$token" ] || break
  done
}

# envdir NAME PREFIX SOCKET: a walden envdir for the S3 store under PREFIX.
envdir() {
  local d=$work/$1
  mkdir -p "$d"
  printf 's3://bench/%s\n' "$2" > "$d/WALE_S3_PREFIX"
  printf 'https+path://127.0.0.1:%s\n' "$S3PORT" > "$d/WALE_S3_ENDPOINT"
  printf 'us-east-1\n' > "$d/AWS_REGION"
  printf 'bench\n' > "$d/AWS_ACCESS_KEY_ID"
  printf 'benchsecret\n' > "$d/AWS_SECRET_ACCESS_KEY"
  printf 'stderr\n' > "$d/WALE_LOG_DESTINATION"
  printf '%s\n' "$3" > "$d/WALDEN_SOCKET"
  printf '%s\n' "$work/lock" > "$d/WALDEN_LOCK_DIR"
  printf '127.0.0.1:%s\n' "$METRICSPORT" > "$d/WALDEN_METRICS_LISTEN"
  # The agent's schedules must not start a backup or a verify mid-run.
  printf '0 0 1 1 *\n' > "$d/WALDEN_BACKUP_SCHEDULE"
  printf 'off\n' > "$d/WALDEN_VERIFY_SCHEDULE"
  for v in $(compgen -e | grep '^WALDEN_' || true); do printf '%s\n' "${!v}" > "$d/$v"; done
  printf 'on\n' > "$d/WALDEN_PUSH_AHEAD"
  chmod -R a+rX "$d"
}

start_agent() { # ENVDIR PGDATA
  rm -f "$work/sock/agent.sock"
  # Not through as_pg: $! must be the agent itself (setpriv and env exec).
  "${aspg[@]}" env "${tlsenv[@]}" "$work/walden" --envdir "$work/$1" agent --pgdata "$2" 2>"$work/agent.log" &
  agentpid=$!
  for _ in $(seq 200); do [ -S "$work/sock/agent.sock" ] && return 0; sleep 0.05; done
  cat "$work/agent.log" >&2; echo "the agent did not open its socket" >&2; exit 1
}
proc_cpu() { # PID: user+sys seconds of a process and its reaped children
  awk -v hz="$(getconf CLK_TCK)" '{print ($14+$15+$16+$17)/hz}' "/proc/$1/stat" 2>/dev/null || echo 0
}
metric() { curl -s "http://127.0.0.1:$METRICSPORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

pgbr_conf() { # FILE PGDATA ASYNC PROCESS_MAX
  mkdir -p "$work/pgbr/spool" "$work/pgbr/log" "$work/pgbr/lock"
  cat > "$1" <<CONF
[global]
repo1-type=s3
repo1-path=/pgbackrest
repo1-s3-bucket=bench
repo1-s3-endpoint=127.0.0.1
repo1-storage-port=$S3PORT
repo1-s3-region=us-east-1
repo1-s3-key=bench
repo1-s3-key-secret=benchsecret
repo1-s3-uri-style=path
repo1-storage-ca-file=$cert
spool-path=$work/pgbr/spool
log-path=$work/pgbr/log
lock-path=$work/pgbr/lock
compress-type=lz4
compress-level=1
log-level-console=warn
log-level-file=off
archive-async=$3
process-max=$4
[bench]
pg1-path=$2
pg1-socket-path=$work/sock
pg1-port=$PORT
CONF
  chown -R postgres "$work/pgbr"
}

# The wrapper around every archive_command: wall time and its child's CPU
# (bash's `times`, second line), one record per call; the archiver calls
# one at a time, so records never interleave.
cat > "$work/wrap.sh" <<'WRAP'
#!/bin/bash
log=$1; shift
t0=$EPOCHREALTIME
"$@"
rc=$?
t1=$EPOCHREALTIME
{ printf 'call %s %s %s\n' "$t0" "$t1" "$rc"; times; } >> "$log"
exit $rc
WRAP
chmod 755 "$work/wrap.sh"

initdb_() { # DIR PORT
  rm -rf "$1"; mkdir -p "$1"; chmod 700 "$1"; chown postgres "$1"
  as_pg "$bindir/initdb" -D "$1" -U postgres --auth=trust --no-sync >/dev/null
  cat >> "$1/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$work/sock'
port = $2
wal_level = replica
archive_mode = on
max_wal_size = 128MB
min_wal_size = 32MB
synchronous_commit = off
CONF
}
pglog() { echo "$work/logs/$(basename "$1").log"; }
pg_start() { # DIR
  as_pg env "${tlsenv[@]}" "$bindir/pg_ctl" -D "$1" -l "$(pglog "$1")" -w -t 300 start >/dev/null
}
pg_stop() { as_pg "$bindir/pg_ctl" -D "$1" -m immediate stop >/dev/null 2>&1 || true; }

# segs_before SEG: every timeline-1 segment name from the first up to, not
# including, SEG (16 MiB segments: 256 per log file).
segs_before() {
  local log=$((16#${1:8:8})) seg=$((16#${1:16:8})) l s
  for ((l = 0; l <= log; l++)); do
    for ((s = (l == 0 ? 1 : 0); s < (l == log ? seg : 256); s++)); do printf '00000001%08X%08X\n' "$l" "$s"; done
  done
}

ready_before() { # DATADIR SEG: the segments before SEG still marked .ready
  find "$1/pg_wal/archive_status" -name '*.ready' -printf '%f\n' | sed 's/\.ready$//' | awk -v c="$2" '$0 < c'
}
wait_caught_up() { # DATADIR SEG LABEL: until no .ready is left before SEG
  local tries=0
  while [ -n "$(ready_before "$1" "$2")" ]; do
    tries=$((tries + 1))
    [ $tries -lt 24000 ] || { echo "$3 did not catch up in 20 minutes; see $(pglog "$1")" >&2; exit 1; }
    sleep 0.05
  done
}

sampler() { # DATADIR OUT: .ready count and pgBackRest's process CPU, every 100 ms
  local hz p
  hz=$(getconf CLK_TCK)
  while :; do
    printf 'ready %s\n' "$(find "$1/pg_wal/archive_status" -name '*.ready' 2>/dev/null | wc -l)"
    for p in $(pgbr_pids); do
      [ -r "/proc/$p/cmdline" ] || continue
      # The async process and its local workers, not archive_command's
      # own archive-push (its CPU is in the wrapper's record).
      if { tr '\0' ' ' < "/proc/$p/cmdline"; } 2>/dev/null | grep -q -e 'archive-push:async' -e 'archive-push:local'; then
        awk -v p="$p" -v hz="$hz" '{print "cpu", p, ($14+$15)/hz}' "/proc/$p/stat" 2>/dev/null || true
      fi
    done
    sleep 0.1
  done > "$2"
}

results=$work/results
: > "$results"

# burst DELAY CASE: one archiving run; appends a line to $results.
burst() {
  local delay=$1 case=$2 data=$work/burst cmd label procs=""
  start_s3 "$delay"
  initdb_ "$data" "$PORT"
  : > "$work/calls.log"; chown postgres "$work/calls.log"
  case $case in
    walden) label="walden wal-push (standalone)"
      envdir env-burst "walden/$case" "$work/no-agent.sock"
      cmd="$work/walden --envdir $work/env-burst wal-push %p";;
    agent) label="walden wal-push + agent"
      envdir env-burst "walden/$case" "$work/sock/agent.sock"
      cmd="$work/walden --envdir $work/env-burst wal-push %p";;
    pgbr2|pgbr4) procs=${case#pgbr}; label="pgBackRest async, process-max $procs"
      rm -rf "$work/pgbr"; pgbr_conf "$work/pgbr.conf" "$data" y "$procs"
      cmd="pgbackrest --config=$work/pgbr.conf --stanza=bench archive-push %p";;
  esac
  printf "archive_command = '%s %s %s'\n" "$work/wrap.sh" "$work/calls.log" "$cmd" >> "$data/postgresql.conf"
  pg_start "$data"
  case $case in
    agent) start_agent env-burst "$data";;
    pgbr*) as_pg pgbackrest --config="$work/pgbr.conf" --stanza=bench stanza-create >/dev/null;;
  esac
  local cpu0=0 s3a t0 t1 t2 cur
  [ "$case" = agent ] && cpu0=$(proc_cpu "$agentpid")
  s3a=$(s3_cpu)
  sampler "$data" "$work/samples" & samplerpid=$!
  t0=$(now)
  as_pg "$bindir/pgbench" -h "$work/sock" -p "$PORT" -U postgres -i -s "$SCALE" -q postgres >/dev/null 2>&1
  as_pg "$bindir/pgbench" -h "$work/sock" -p "$PORT" -U postgres -n -c "$CLIENTS" -j 2 -T "$LOAD_SECS" postgres >/dev/null 2>&1
  t1=$(now)
  cur=$(psql_ 'select pg_walfile_name(pg_current_wal_lsn())')
  segs_before "$cur" > "$work/expected"
  wait_caught_up "$data" "$cur" "$label"
  t2=$(now)
  local cpu1=0 s3b
  [ "$case" = agent ] && cpu1=$(proc_cpu "$agentpid")
  s3b=$(s3_cpu)
  stop_pid "$samplerpid"; samplerpid=
  local served=""
  [ "$case" = agent ] && served=$(metric walden_wal_pushahead_uploaded_total)
  # Then a held backlog: archiving is off (empty archive_command, and the
  # agent stopped, as after an outage) while HOLD_SECS of pgbench run; it is
  # switched back on and the time to drain the backlog is measured. The
  # agent is started again just before, as its service would be.
  local backlog=0 t3=0 t4=0
  if [ "$HOLD_SECS" != 0 ]; then
    if [ "$case" = agent ]; then stop_pid "$agentpid"; agentpid=""; fi
    psql_ "alter system set archive_command = ''" >/dev/null
    psql_ 'select pg_reload_conf()' >/dev/null
    as_pg "$bindir/pgbench" -h "$work/sock" -p "$PORT" -U postgres -n -c "$CLIENTS" -j 2 -T "$HOLD_SECS" postgres >/dev/null 2>&1
    cur=$(psql_ 'select pg_walfile_name(pg_current_wal_lsn())')
    segs_before "$cur" > "$work/expected"
    backlog=$(ready_before "$data" "$cur" | wc -l)
    [ "$case" = agent ] && start_agent env-burst "$data"
    : > "$work/calls2.log"; chown postgres "$work/calls2.log"
    t3=$(now)
    psql_ "alter system set archive_command = '$work/wrap.sh $work/calls2.log $cmd'" >/dev/null
    psql_ 'select pg_reload_conf()' >/dev/null
    wait_caught_up "$data" "$cur" "$label"
    t4=$(now)
  fi
  pg_stop "$data"
  stop_pid "$agentpid"; agentpid=
  for p in $(pgbr_pids); do kill "$p" 2>/dev/null || true; done
  # The store must hold every segment before $cur.
  local prefix=walden/$case/wal_005/
  [ -n "$procs" ] && prefix=pgbackrest/archive/bench/
  s3_keys "$prefix" | grep -oE '[0-9A-F]{24}' | sort -u > "$work/stored"
  local missing
  missing=$(comm -23 "$work/expected" "$work/stored" | wc -l)
  if [ "$missing" != 0 ]; then
    echo "$label: $missing of $(wc -l < "$work/expected") segments before $cur are not in the store:" >&2
    comm -23 "$work/expected" "$work/stored" | head >&2; exit 1
  fi
  local nseg peak pcpu stats
  nseg=$(wc -l < "$work/expected")
  peak=$(awk '$1 == "ready" && $2 > m {m = $2} END {print m + 0}' "$work/samples")
  pcpu=$(awk '$1 == "cpu" {c[$2] = $3} END {for (p in c) s += c[p]; print s + 0}' "$work/samples")
  # calls, p50 ms, p99 ms, children's CPU seconds, failed calls
  stats=$(awk '
    function sec(t,  a) { split(t, a, "m"); return a[1] * 60 + substr(a[2], 1, length(a[2]) - 1) }
    $1 == "call" { n++; w[n] = ($3 - $2) * 1000; if ($4 != 0) bad++; line = 0; next }
    { line++; if (line == 2) cpu += sec($1) + sec($2) }
    END { if (n == 0) { print 0, 0, 0, 0, 0; exit }
      # sort the wall times (insertion sort: a few hundred calls)
      for (i = 2; i <= n; i++) { v = w[i]; j = i - 1; while (j > 0 && w[j] > v) { w[j + 1] = w[j]; j-- } w[j + 1] = v }
      p50 = w[int((n - 1) * 0.50) + 1]; p99 = w[int((n - 1) * 0.99) + 1]
      printf "%d %.1f %.1f %.3f %d\n", n, p50, p99, cpu, bad + 0 }' "$work/calls.log")
  local hz cpu
  hz=$(getconf CLK_TCK)
  cpu=$(echo "$(echo "$stats" | cut -d' ' -f4) + $cpu1 - $cpu0 + $pcpu" | bc -l)
  printf 'a\t%s\t%s\t%s\t%d\t%.2f\t%.2f\t%d\t%.3f\t%.3f\t%s\t%s\t%d\t%.2f\n' "$delay" "$case" "$label" "$nseg" \
    "$(echo "$t1 - $t0" | bc -l)" "$(echo "$t2 - $t1" | bc -l)" "$peak" \
    "$(echo "$cpu / $nseg" | bc -l)" "$(echo "($s3b - $s3a) / $hz / $nseg" | bc -l)" \
    "$(echo "$stats" | cut -d' ' -f1-3,5 | tr ' ' '\t')" "${served:--}" "$backlog" "$(echo "$t4 - $t3" | bc -l)" >> "$results"
  printf '  %-36s delay %3s ms: %d segments, load %.1f s, caught up %.2f s after it, peak .ready %d; backlog of %d drained in %.2f s\n' "$label" "$delay" "$nseg" \
    "$(echo "$t1 - $t0" | bc -l)" "$(echo "$t2 - $t1" | bc -l)" "$peak" "$backlog" "$(echo "$t4 - $t3" | bc -l)"
  stop_pid "$s3pid"; s3pid=
}

# ---- (b) the WAL and base copy every replay starts from ----
nreplay=0
if [[ $PARTS == *b* ]]; then
echo "PITR source: base copy, then at least $PITR_SEGS archived segments of pgbench"
pitr=$work/pitr
initdb_ "$pitr" "$PORT"
echo "archive_command = 'test ! -f $work/filestore/%f && cp %p $work/filestore/%f'" >> "$pitr/postgresql.conf"
pg_start "$pitr"
as_pg "$bindir/pgbench" -h "$work/sock" -p "$PORT" -U postgres -i -s 10 -q postgres >/dev/null 2>&1
mkdir -p "$work/base"; chown postgres "$work/base"
as_pg "$bindir/pg_basebackup" -h "$work/sock" -p "$PORT" -U postgres -D "$work/base/data" -X none -c fast >/dev/null 2>&1
# The first segment recovery reads: the one the base copy starts in.
first=$(grep -oE 'file [0-9A-F]{24}' "$work/base/data/backup_label" | cut -d' ' -f2)
while [ "$(find "$work/filestore" -name '[0-9A-F]*' -printf '%f\n' | awk -v f="$first" '$0 >= f' | wc -l)" -lt "$PITR_SEGS" ]; do
  as_pg "$bindir/pgbench" -h "$work/sock" -p "$PORT" -U postgres -n -c "$CLIENTS" -j 2 -T 5 postgres >/dev/null 2>&1
done
psql_ 'select pg_switch_wal()' >/dev/null
sleep 1
as_pg "$bindir/pg_ctl" -D "$pitr" -m fast stop >/dev/null
pitrsegs=$(find "$work/filestore" -name '[0-9A-F]*' -printf '%f\n' | grep -E '^[0-9A-F]{24}$' | sort)
npitr=$(echo "$pitrsegs" | wc -l)
nreplay=$(echo "$pitrsegs" | awk -v f="$first" '$0 >= f' | wc -l)
lastseg=$(echo "$pitrsegs" | tail -1)
mkdir -p "$work/pitrsrc/pg_wal"
for s in $pitrsegs; do cp "$work/filestore/$s" "$work/pitrsrc/pg_wal/$s"; done
chown -R postgres "$work/pitrsrc"
echo "  $npitr segments archived, recovery replays $nreplay of them ($first to $lastseg)"
fi

# replay DELAY LABEL RESTORE_COMMAND [agent]: one recovery, start to promotion.
replay() {
  local delay=$1 label=$2 cmd=$3 t0 t1 d=$work/replay
  rm -rf "$d"; cp -a "$work/base/data" "$d"; chown -R postgres "$d"; chmod 700 "$d"
  cat >> "$d/postgresql.conf" <<CONF
port = $((PORT + 1))
archive_mode = off
restore_command = '$cmd'
CONF
  touch "$d/recovery.signal"; chown postgres "$d/recovery.signal"
  [ "${4:-}" = agent ] && start_agent env-pitr-agent "$d"
  rm -rf "$work/pgbr/spool"; mkdir -p "$work/pgbr/spool"; chown postgres "$work/pgbr/spool"
  # The S3 server shares the 2 CPUs with PostgreSQL's redo: its CPU time
  # during the replay is reported beside it (cp reads the file copy).
  local s3a s3b
  s3a=$(s3_cpu)
  t0=$(now)
  as_pg env "${tlsenv[@]}" "$bindir/pg_ctl" -D "$d" -l "$(pglog "$d")" -t 900 start >/dev/null || {
    echo "replay $label failed to start; see $(pglog "$d")" >&2; tail "$(pglog "$d")" >&2; exit 1; }
  local tries=0
  until [ "$(psql_ 'select pg_is_in_recovery()' $((PORT + 1)) 2>/dev/null)" = f ]; do
    tries=$((tries + 1))
    [ $tries -lt 18000 ] || { echo "replay $label did not finish; see $(pglog "$d")" >&2; tail "$(pglog "$d")" >&2; exit 1; }
    sleep 0.05
  done
  t1=$(now)
  s3b=$(s3_cpu)
  # Recovery must have gone through every archived segment.
  local last
  last=$(grep -o 'restored log file "[0-9A-F]*"' "$(pglog "$d")" | tail -1 | grep -oE '[0-9A-F]{24}' || true)
  if [ "$last" != "$lastseg" ]; then
    echo "replay $label ended at ${last:-no segment}, not $lastseg; see $(pglog "$d")" >&2; exit 1
  fi
  local served=-
  if [ "${4:-}" = agent ]; then
    served=$(metric walden_wal_fetched_total)
    [ -n "${LOGDIR:-}" ] && curl -s "http://127.0.0.1:$METRICSPORT/metrics" > "$LOGDIR/metrics-$delay.txt"
    stop_pid "$agentpid"; agentpid=
    [ -n "${LOGDIR:-}" ] && cp "$work/agent.log" "$LOGDIR/agent-$delay.log" && cp "$(pglog "$d")" "$LOGDIR/pg-agent-$delay.log"
  fi
  pg_stop "$d"
  printf 'b\t%s\t%s\t%.2f\t%s\t%s\t%.2f\n' "$delay" "$label" "$(echo "$t1 - $t0" | bc -l)" "$last" "${served:--}" "$(echo "($s3b - $s3a) / $(getconf CLK_TCK)" | bc -l)" >> "$results"
  printf '  replay %-44s delay %3s ms: %.2f s (last restored %s)\n' "$label" "$delay" "$(echo "$t1 - $t0" | bc -l)" "${last:-none}"
  for p in $(pgbr_pids); do kill "$p" 2>/dev/null || true; done
}

# fetchcmp DELAY: one wal-fetch call against curl | lz4 -dc, same object.
fetchcmp() {
  local delay=$1 seg out=$work/fetched t0 t1
  seg=$(echo "$pitrsegs" | sed -n "$(( (npitr + 1) / 2 ))p")
  local url="https://127.0.0.1:$S3PORT/bench/walden/pitr/wal_005/$seg.lz4"
  : > "$work/fc"
  for _ in $(seq "$FETCH_REPEAT"); do
    rm -f "$out"; t0=$(now)
    curl -sf --cacert "$cert" "$url" | lz4 -dc > "$out"
    t1=$(now); echo "curl $(echo "($t1 - $t0) * 1000" | bc -l)" >> "$work/fc"
    cmp -s "$out" "$work/pitrsrc/pg_wal/$seg" || { echo "curl | lz4 -dc did not give back $seg" >&2; exit 1; }
    rm -f "$out"; t0=$(now)
    env "${tlsenv[@]}" "$work/walden" --envdir "$work/env-pitr" wal-fetch -p 0 "$seg" "$out" 2>/dev/null
    t1=$(now); echo "walden $(echo "($t1 - $t0) * 1000" | bc -l)" >> "$work/fc"
    cmp -s "$out" "$work/pitrsrc/pg_wal/$seg" || { echo "wal-fetch did not give back $seg" >&2; exit 1; }
    # The same call through the agent (as PostgreSQL's user, as the agent
    # serves only its own user): no prefetch, so the agent fetches the
    # object when asked and streams it.
    local aout=$work/sock/fetched
    rm -f "$aout"; t0=$(now)
    as_pg env "${tlsenv[@]}" "$work/walden" --envdir "$work/env-pitr-agent" wal-fetch -p 0 "$seg" "$aout" 2>/dev/null
    t1=$(now); echo "agent $(echo "($t1 - $t0) * 1000" | bc -l)" >> "$work/fc"
    cmp -s "$aout" "$work/pitrsrc/pg_wal/$seg" || { echo "wal-fetch through the agent did not give back $seg" >&2; exit 1; }
  done
  for m in curl walden agent; do
    printf 'c\t%s\t%s\t%.1f\n' "$delay" "$m" "$(awk -v m="$m" '$1 == m {print $2}' "$work/fc" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')" >> "$results"
  done
}

pitr_runs() { # DELAY
  local delay=$1
  start_s3 "$delay"
  envdir env-pitr walden/pitr "$work/no-agent.sock"
  envdir env-pitr-agent walden/pitr "$work/sock/agent.sock"
  rm -rf "$work/pgbr"; pgbr_conf "$work/pgbr-push.conf" "$pitr" n 1
  as_pg pgbackrest --config="$work/pgbr-push.conf" --stanza=bench --no-online stanza-create >/dev/null
  # The archive for each tool, pushed four at a time.
  echo "$pitrsegs" | (cd "$work/pitrsrc" && xargs -P 4 -I{} "${aspg[@]}" env "${tlsenv[@]}" "$work/walden" --envdir "$work/env-pitr" wal-push pg_wal/{} 2>/dev/null)
  echo "$pitrsegs" | xargs -P 4 -I{} "${aspg[@]}" pgbackrest --config="$work/pgbr-push.conf" --stanza=bench archive-push "$work/pitrsrc/pg_wal/{}"
  [ "$(s3_keys walden/pitr/wal_005/ | wc -l)" -ge "$npitr" ] || { echo "walden's PITR archive is incomplete" >&2; exit 1; }
  [ "$(s3_keys pgbackrest/archive/bench/ | grep -cE '[0-9A-F]{24}-')" -ge "$npitr" ] || { echo "pgBackRest's PITR archive is incomplete" >&2; exit 1; }
  pgbr_conf "$work/pgbr-get.conf" "$work/replay" n 1
  pgbr_conf "$work/pgbr-get-async.conf" "$work/replay" y 2
  replay "$delay" "cp (file store)" "cp $work/filestore/%f %p"
  if [[ " $REPLAYS " == *" walden "* ]]; then
    replay "$delay" "walden wal-fetch -p 8" "$work/walden --envdir $work/env-pitr wal-fetch -p 8 %f %p"
  fi
  if [[ " $REPLAYS " == *" agent "* ]]; then
    replay "$delay" "walden wal-fetch -p 8 + agent" "$work/walden --envdir $work/env-pitr-agent wal-fetch -p 8 %f %p" agent
  fi
  if [[ " $REPLAYS " == *" pgbr "* ]]; then
    replay "$delay" "pgBackRest archive-get" "pgbackrest --config=$work/pgbr-get.conf --stanza=bench archive-get %f \"%p\""
    replay "$delay" "pgBackRest archive-get, async" "pgbackrest --config=$work/pgbr-get-async.conf --stanza=bench archive-get %f \"%p\""
  fi
  # The baseline again last: the faster of its two runs is the reference.
  replay "$delay" "cp (file store)" "cp $work/filestore/%f %p"
  if [ "$FETCH_REPEAT" -gt 0 ]; then
    start_agent env-pitr-agent "$work/replay" # the last replay's, stopped
    fetchcmp "$delay"
    stop_pid "$agentpid"; agentpid=
  fi
  stop_pid "$s3pid"; s3pid=
}

for delay in $DELAYS; do
  if [[ $PARTS == *a* ]]; then
    echo "burst, S3 delay $delay ms (pgbench -i -s $SCALE, then $LOAD_SECS s of pgbench with $CLIENTS clients)"
    for c in walden agent pgbr2 pgbr4; do burst "$delay" "$c"; done
  fi
  if [[ $PARTS == *b* ]]; then
    echo "PITR replay, S3 delay $delay ms"
    pitr_runs "$delay"
  fi
done

# ---- report ----
echo
echo "## Machine"
echo
echo "- $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) memory"
echo "- walden $("$work/walden" version 2>&1 | head -1) ($(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?')), $(pgbackrest version), $("$bindir/postgres" --version), $(lz4 --version 2>&1 | head -1 | tr -d '*' | sed 's/ by .*//; s/^ *//')"
echo "- S3: bench/s3server (gofakes3 in memory, TLS) on 127.0.0.1, fresh for each case; lz4 level 1 for every tool"
echo
echo "## (a) Archiving a burst: pgbench -i -s $SCALE, then $LOAD_SECS s of pgbench ($CLIENTS clients)"
echo
echo "Caught up: no .ready left for any segment before the one current at the end of the load (all verified in the store)."
echo "CPU s/seg: archive_command calls + agent or pgBackRest async/local processes; server CPU apart."
echo
echo "Live: archiving on during the load. Held backlog: archiving off (agent stopped) during $HOLD_SECS s more of pgbench, then on; drain: until caught up again."
echo
echo "| S3 delay | archiving | live: segments | load s | catch-up s | load start to caught up s | vs same at 0 ms | peak .ready | CPU s/seg | server CPU s/seg | calls | p50 ms | p99 ms | failed calls | held backlog | drain s | drain segments/s | drain time per segment vs same at 0 ms |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
awk -F'\t' '$1 == "a" {
    key = $3; tot = $6 + $7
    if ($2 == 0) { zero[key] = tot; dz[key] = ($16 > 0 ? $17 / $16 : 0) }
    r = (key in zero && zero[key] > 0) ? sprintf("%.2fx", tot / zero[key]) : "-"
    dr = (key in dz && dz[key] > 0 && $16 > 0) ? sprintf("%.2fx", $17 / $16 / dz[key]) : "-"
    printf "| %s ms | %s | %s | %.1f | %.2f | %.1f | %s | %s | %.3f | %.3f | %s | %s | %s | %s | %s | %.2f | %.1f | %s |\n", $2, $4, $5, $6, $7, tot, r, $8, $9, $10, $11, $12, $13, $14, $16, $17, ($17 > 0 ? $16 / $17 : 0), dr }' "$results"
echo
echo "(vs same at 0 ms: time against the same tool with the immediate store; above 1 is slower)"
awk -F'\t' '$1 == "a" { t[$2, $3] = $6 + $7; c[$2, $3] = $7; dr[$2, $3] = ($16 > 0 ? $17 / $16 : 0); d[$2] = 1 }
  END { for (x in d) {
      if (t[x, "agent"] > 0) printf "- delay %s ms, time vs walden+agent, pgBackRest async process-max 2 / 4: load start to caught up %.2fx / %.2fx; catch-up after the load %.2f s / %.2f s vs %.2f s; held backlog drain time per segment %.2fx / %.2fx\n", x, t[x, "pgbr2"] / t[x, "agent"], t[x, "pgbr4"] / t[x, "agent"], c[x, "pgbr2"], c[x, "pgbr4"], c[x, "agent"], (dr[x, "agent"] > 0 ? dr[x, "pgbr2"] / dr[x, "agent"] : 0), (dr[x, "agent"] > 0 ? dr[x, "pgbr4"] / dr[x, "agent"] : 0) } }' "$results" | sort -t' ' -k3,3n
echo
echo "## (b) PITR replay of $nreplay segments from a base copy, start to promotion"
echo
echo "| S3 delay | restore_command | seconds | segments/s | vs cp, same delay | vs same at 0 ms | S3 server CPU s |"
echo "|---|---|---|---|---|---|---|"
awk -F'\t' -v n="$nreplay" '$1 == "b" { row[++k] = $0; if ($3 ~ /^cp / && (!($2 in base) || $4 < base[$2])) base[$2] = $4 }
  END { for (i = 1; i <= k; i++) { split(row[i], f, "\t")
      if (f[2] == 0 && !((f[3]) in zero)) zero[f[3]] = f[4]
      r = (f[3] in zero) ? sprintf("%.2fx", zero[f[3]] / f[4]) : "-"
      printf "| %s ms | %s | %.2f | %.2f | %.2fx | %s | %.2f |\n", f[2], f[3], f[4], n / f[4], base[f[2]] / f[4], r, f[7] } }' "$results"
echo
echo "vs cp: against the faster of the two cp runs of the same delay. vs same at 0 ms: replay rate against the same restore_command's first run with the immediate store."
echo
echo "## One fetch of the same object (median of $FETCH_REPEAT, wall ms)"
echo
echo "| S3 delay | curl \| lz4 -dc | walden wal-fetch -p 0 | ratio | same through the agent | ratio |"
echo "|---|---|---|---|---|---|"
awk -F'\t' '$1 == "c" { v[$2, $3] = $4; d[$2] = 1 }
  END { for (x in d) printf "| %s ms | %.1f | %.1f | %.2fx | %.1f | %.2fx |\n", x, v[x, "curl"], v[x, "walden"], v[x, "walden"] / v[x, "curl"], v[x, "agent"], v[x, "agent"] / v[x, "curl"] }' "$results" | sort -t' ' -k2,2n
echo
echo "raw:"
cat "$results"
