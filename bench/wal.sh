#!/usr/bin/env bash
# WAL archiving benchmark: 64 real 16 MiB segments from a pgbench run, pushed
# one process at a time (as PostgreSQL's archiver does) and fetched one call
# at a time with prefetch; then a real recovery of every archived segment
# from a base copy taken before the load, through each restore_command.
# Baselines in the same run: `lzop -1 -c SEG > store/SEG.lzo` / `lzop -dc`,
# and pgBackRest's archive-push / archive-get and WAL-G's wal-push / wal-fetch
# (lz4, prefetch 8) on the same segments.
# Usage: sudo bench/wal.sh   (needs postgresql-15, lzop, pgbackrest, and WAL-G
# at ../shared/anchors/wal-g/wal-g from the repository root or WALG_BIN)
# `sudo bench/wal.sh fetch-ahead` measures wal-fetch through the agent
# instead (section below).
set -euo pipefail

# --- fetch-ahead: `bench/wal.sh fetch-ahead` ---------------------------------
# One wal-fetch call, standalone and through the agent, against reading the
# same object with `lz4 -dc FILE > out` (file store) or
# `curl -s URL | lz4 -dc > out` (S3 on loopback, bench/s3server); then
# PostgreSQL replaying N segments from a base copy through `cp`, walden
# standalone (-p 8) and walden through the agent (-p 8), on both stores.
# Needs postgresql-15, lz4, curl; not WAL-G or pgBackRest.
#   N=64 R=15 bench/wal.sh fetch-ahead
# Reuse from another script: WALDEN=/path/to/walden skips the build;
# S3_ENDPOINT=http://127.0.0.1:PORT (a bucket "bench", keys bench /
# benchsecret, e.g. behind a delaying proxy) replaces the local s3server;
# FA_ONLY=file or FA_ONLY=s3 runs one store; ROUNDS=K runs every replay K
# times, in turn, and reports medians; FA_NO_STANDALONE=1 leaves out the
# standalone replays. Results: one line per case,
# "case seconds" for single calls (median of R) and "case segments/s".
fetch_ahead() {
  local N=${N:-64} R=${R:-15}
  local top
  top=$(cd "$(dirname "$0")/.." && pwd)
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  work=$(mktemp -d /tmp/walden-fabench.XXXXXX)
  chmod 755 "$work"
  fa_pids=()
  trap 'for p in "${fa_pids[@]}"; do kill "$p" 2>/dev/null || true; done
        for d in data replay; do runuser -u postgres -- "$bindir/pg_ctl" -D "$work/$d" -m immediate stop >/dev/null 2>&1 || true; done
        [ -n "${FA_KEEP:-}" ] || rm -rf "$work"' EXIT
  as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }
  now() { date +%s.%N; }
  median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

  local bin=${WALDEN:-}
  if [ -z "$bin" ]; then
    echo "building walden"
    # The front as walden, the full program beside it as walden-core and
    # the WAL program as walden-wal, as the package installs them; the tags
    # as the Makefile builds.
    (cd "$top" && CGO_ENABLED=0 go build -o "$work/walden" ./cmd/walden-front &&
      CGO_ENABLED=0 go build -tags disable_grpc_modules -o "$work/walden-core" ./cmd/walden &&
      CGO_ENABLED=0 go build -tags walden_wal -o "$work/walden-wal" ./cmd/walden)
    bin=$work/walden
  fi
  chmod 755 "$bin"
  local s3=${S3_ENDPOINT:-}
  if [ -z "$s3" ] && [ "${FA_ONLY:-}" != file ]; then
    (cd "$top" && go build -o "$work/s3server" ./bench/s3server)
    local s3port=$((20000 + RANDOM % 20000))
    "$work/s3server" -addr "127.0.0.1:$s3port" -bucket bench > "$work/s3.log" 2>&1 &
    fa_pids+=($!)
    for _ in $(seq 50); do grep -q listening "$work/s3.log" && break; sleep 0.1; done
    s3=http://127.0.0.1:$s3port
  fi

  echo "generating $N segments with pgbench"
  mkdir -p "$work/segs" "$work/sock" "$work/data" "$work/bb"; chmod 700 "$work/data"
  chown postgres "$work/segs" "$work/sock" "$work/data" "$work/bb"
  as_pg "$bindir/initdb" -D "$work/data" -U postgres --auth=trust --no-sync >/dev/null
  cat >> "$work/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$work/sock'
port = 25997
archive_mode = on
archive_command = 'cp %p $work/segs/%f'
max_wal_size = 4GB
CONF
  as_pg "$bindir/pg_ctl" -D "$work/data" -l "$work/sock/pg.log" -w start >/dev/null
  local pgenv=(env PGHOST="$work/sock" PGPORT=25997 PGUSER=postgres)
  as_pg "${pgenv[@]}" "$bindir/pg_basebackup" -D "$work/bb/base" -X none -c fast >/dev/null 2>&1
  as_pg "${pgenv[@]}" "$bindir/pgbench" -i -s 20 -q postgres >/dev/null 2>&1
  while [ "$(ls "$work/segs" | grep -cE '^[0-9A-F]{24}$')" -lt "$N" ]; do
    as_pg "${pgenv[@]}" "$bindir/pgbench" -n -c 2 -T 5 postgres >/dev/null 2>&1
    as_pg "${pgenv[@]}" "$bindir/psql" -X -q -c 'select pg_switch_wal()' postgres >/dev/null
    sleep 1
  done
  as_pg "$bindir/pg_ctl" -D "$work/data" -m fast stop >/dev/null
  local allsegs nall
  allsegs=$(ls "$work/segs" | grep -E '^[0-9A-F]{24}$' | sort)
  nall=$(echo "$allsegs" | wc -l)

  # Envdirs: standalone (no socket) and agent (socket, metrics) per store.
  local st stores=()
  [ "${FA_ONLY:-}" != s3 ] && stores+=(file)
  [ "${FA_ONLY:-}" != file ] && stores+=(s3)
  for st in "${stores[@]}"; do
    for mode in alone agent; do
      local e=$work/env-$st-$mode
      mkdir -p "$e"
      echo lz4 > "$e/WALDEN_COMPRESSION"; echo stderr > "$e/WALE_LOG_DESTINATION"
      if [ "$st" = file ]; then
        echo "file://localhost$work/store" > "$e/WALE_FILE_PREFIX"
      else
        echo s3://bench/fa > "$e/WALE_S3_PREFIX"
        echo "http+path://${s3#http://}" > "$e/WALE_S3_ENDPOINT"
        echo us-east-1 > "$e/AWS_REGION"; echo bench > "$e/AWS_ACCESS_KEY_ID"; echo benchsecret > "$e/AWS_SECRET_ACCESS_KEY"
      fi
      echo "$work/sock/agent-$st.sock" > "$e/WALDEN_SOCKET"
      [ "$mode" = alone ] && echo "$work/sock/none.sock" > "$e/WALDEN_SOCKET"
      echo "127.0.0.1:$((20000 + RANDOM % 20000))" > "$e/WALDEN_METRICS_LISTEN"
      echo "$work/sock" > "$e/WALDEN_LOCK_DIR"
      echo '0 0 1 1 *' > "$e/WALDEN_BACKUP_SCHEDULE"
    done
  done
  mkdir -p "$work/store" "$work/src/pg_wal"
  for s in $allsegs; do cp "$work/segs/$s" "$work/src/pg_wal/$s"; done
  chown -R postgres "$work/store" "$work/src"; chmod -R a+rX "$work"/env-*
  echo "archiving into ${stores[*]}"
  for st in "${stores[@]}"; do
    for s in $allsegs; do (cd "$work/src" && as_pg "$bin" --envdir "$work/env-$st-alone" wal-push "pg_wal/$s" 2>/dev/null); done
  done

  local agent_pid=
  start_agent() { # store, pgdata
    # Not through as_pg: $! must be the agent itself, to stop it.
    setpriv --reuid=postgres --regid=postgres --init-groups -- "$bin" --envdir "$work/env-$1-agent" agent --pgdata "$2" 2>>"$work/sock/agent-$1.log" &
    agent_pid=$!; fa_pids+=("$agent_pid")
    for _ in $(seq 200); do [ -S "$work/sock/agent-$1.sock" ] && return; sleep 0.05; done
    echo "agent did not start; see $work/sock/agent-$1.log" >&2; exit 1
  }
  stop_agent() {
    kill "$agent_pid" 2>/dev/null || { echo "the agent died; see its log:" >&2; tail -20 "$work/sock/agent-$1.log" >&2; exit 1; }
    wait "$agent_pid" 2>/dev/null || true; agent_pid=
    rm -f "$work/sock/agent-$1.sock"
  }

  # One call each, timed inside one shell of the postgres user so that only
  # the command itself is measured; median over R different segments.
  local picks results=""
  picks=$(echo "$allsegs" | head -n "$((R + 1))" | tail -n "$R" | tr '\n' ' ')
  mkdir -p "$work/dst/pg_wal" "$work/dst/global"; echo 15 > "$work/dst/PG_VERSION"; : > "$work/dst/global/pg_control"
  chown -R postgres "$work/dst"
  one_call() { # label, command with $s
    local t
    t=$(cd "$work/dst" && as_pg bash -c 'for s in '"$picks"'; do rm -f pg_wal/RECOVERYXLOG; t0=$EPOCHREALTIME; '"$2"' || exit 1; t1=$EPOCHREALTIME; echo "$t1 - $t0" | bc -l; done' | median)
    results="$results
call:$1 $t"
  }
  for st in "${stores[@]}"; do
    if [ "$st" = file ]; then
      one_call "$st:lz4-dc-baseline" "lz4 -dc -q $work/store/wal_005/\$s.lz4 > pg_wal/RECOVERYXLOG"
    else
      one_call "$st:curl-lz4-dc-baseline" "curl -sf $s3/bench/fa/wal_005/\$s.lz4 | lz4 -dc -q > pg_wal/RECOVERYXLOG"
    fi
    one_call "$st:walden-standalone" "$bin --envdir $work/env-$st-alone wal-fetch -p 0 \$s pg_wal/RECOVERYXLOG 2>/dev/null"
    start_agent "$st" "$work/dst"
    one_call "$st:walden-agent" "$bin --envdir $work/env-$st-agent wal-fetch -p 0 \$s pg_wal/RECOVERYXLOG 2>/dev/null"
    stop_agent "$st"
  done

  replay() { # label, restore_command, store of the agent to run (or "")
    local label=$1 cmd=$2 t0 t1 tries=0
    rm -rf "$work/replay"; cp -a "$work/bb/base" "$work/replay"; chown -R postgres "$work/replay"; chmod 700 "$work/replay"
    cat >> "$work/replay/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$work/sock'
port = 25996
archive_mode = off
restore_command = '$cmd'
CONF
    touch "$work/replay/recovery.signal"; chown postgres "$work/replay/recovery.signal"
    [ -n "$3" ] && start_agent "$3" "$work/replay"
    t0=$(now)
    as_pg "$bindir/pg_ctl" -D "$work/replay" -l "$work/sock/replay-$label.log" -t 600 start >/dev/null
    until [ "$(as_pg env PGHOST="$work/sock" PGPORT=25996 "$bindir/psql" -X -A -t -d postgres -c 'select pg_is_in_recovery()' 2>/dev/null)" = f ]; do
      tries=$((tries + 1)); [ $tries -lt 12000 ] || { echo "replay $label did not finish; see $work/sock/replay-$label.log" >&2; exit 1; }
      sleep 0.05
    done
    t1=$(now)
    as_pg "$bindir/pg_ctl" -D "$work/replay" -m immediate stop >/dev/null
    if [ -n "$3" ]; then stop_agent "$3"; fi
    results="$results
replay:$label $(echo "$nall / ($t1 - $t0)" | bc -l)"
  }
  chmod 755 "$work/segs"
  # ROUNDS rounds, each running every restore_command once in the same
  # order: a replay's time moves by a fifth between runs here, so each rate
  # is the median of its rounds.
  for _ in $(seq "${ROUNDS:-1}"); do
    replay cp-baseline "test -f $work/segs/%f && cp $work/segs/%f %p" ""
    for st in "${stores[@]}"; do
      [ -n "${FA_NO_STANDALONE:-}" ] || replay "$st:walden-standalone" "$bin --envdir $work/env-$st-alone wal-fetch -p 8 %f %p" ""
      replay "$st:walden-agent" "$bin --envdir $work/env-$st-agent wal-fetch -p 8 %f %p" "$st"
    done
  done

  echo
  # One line per case, in the order first run: its median, then each value.
  local summary="" c vals
  for c in $(echo "$results" | awk 'NF == 2 && !seen[$1]++ {print $1}'); do
    vals=$(echo "$results" | awk -v c="$c" '$1 == c {print $2}')
    summary="$summary
$c $(echo "$vals" | median) $(echo $vals)"
  done
  echo "$summary" | awk '
    NF >= 2 { c = $1; order[++n] = c; v[c] = $2; r[c] = ""; split(c, k, ":")
              for (j = 3; j <= NF; j++) r[c] = r[c] sprintf(" %.1f", $j)
              if (c ~ /baseline/) base[k[1] ":" k[2]] = v[c]; if (c == "replay:cp-baseline") cp = v[c] }
    END {
      for (i = 1; i <= n; i++) { c = order[i]; split(c, k, ":")
        if (k[1] == "call") printf "%-36s %8.1f ms   %5.2fx the baseline time\n", c, v[c] * 1000, v[c] / base[k[1] ":" k[2]]
        else printf "%-36s %8.1f seg/s %5.2fx the cp rate (rounds:%s)\n", c, v[c], v[c] / cp, r[c] } }'
  echo "(call: median wall time of one restore of a 16 MiB lz4 segment over $R segments, -p 0; replay: PostgreSQL recovering $nall segments from a base copy, -p 8, median of ${ROUNDS:-1} rounds; same run)"
}
if [ "${1:-}" = fetch-ahead ]; then
  fetch_ahead
  exit 0
fi
# ----------------------------------------------------------------------------
N=${N:-64}
top=$(cd "$(dirname "$0")/.." && pwd)
WALG_BIN=${WALG_BIN:-$top/../shared/anchors/wal-g/wal-g}
if [ ! -x "$WALG_BIN" ]; then
  echo "bench/wal.sh: no WAL-G binary at $WALG_BIN (set WALG_BIN)" >&2; exit 1
fi
bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
work=$(mktemp -d /tmp/walden-walbench.XXXXXX)
chmod 755 "$work"
trap 'runuser -u postgres -- "$bindir/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
# setpriv, not runuser: runuser goes through PAM and costs ~300 ms a call.
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }
now() { date +%s.%N; }

echo "building walden"
(cd "$top" && CGO_ENABLED=0 go build -tags disable_grpc_modules -o "$work/walden" ./cmd/walden)
chmod 755 "$work/walden"
# A copy postgres can execute whatever the permissions on the way to WALG_BIN.
cp "$WALG_BIN" "$work/wal-g"; chmod 755 "$work/wal-g"

echo "generating $N segments with pgbench"
mkdir -p "$work/segs" "$work/sock" "$work/data"; chmod 700 "$work/data"
chown postgres "$work/segs" "$work/sock" "$work/data"
as_pg "$bindir/initdb" -D "$work/data" -U postgres --auth=trust --no-sync >/dev/null
cat >> "$work/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$work/sock'
port = 25999
archive_mode = on
archive_command = 'cp %p $work/segs/%f'
max_wal_size = 4GB
CONF
as_pg "$bindir/pg_ctl" -D "$work/data" -l "$work/sock/pg.log" -w start >/dev/null
export PGHOST=$work/sock PGPORT=25999 PGUSER=postgres
# The base copy the replay starts from, taken before any load.
mkdir -p "$work/bb"; chown postgres "$work/bb"
as_pg env PGHOST=$PGHOST PGPORT=$PGPORT "$bindir/pg_basebackup" -D "$work/bb/base" -X none -c fast >/dev/null 2>&1
as_pg env PGHOST=$PGHOST PGPORT=$PGPORT "$bindir/pgbench" -i -s 20 -q postgres >/dev/null 2>&1
while [ "$(ls "$work/segs" | grep -cE '^[0-9A-F]{24}$')" -lt "$N" ]; do
  as_pg env PGHOST=$PGHOST PGPORT=$PGPORT "$bindir/pgbench" -n -c 2 -T 5 postgres >/dev/null 2>&1
  as_pg env PGHOST=$PGHOST PGPORT=$PGPORT "$bindir/psql" -X -q -c 'select pg_switch_wal()' postgres >/dev/null
  sleep 1
done
allsegs=$(ls "$work/segs" | grep -E '^[0-9A-F]{24}$' | sort)
segs=$(echo "$allsegs" | head -n "$N")
mib=$((N * 16))

# pgBackRest needs the stanza of the running cluster.
mkdir -p "$work/pgbr/repo" "$work/pgbr/log" "$work/pgbr/spool"
cat > "$work/pgbr/pgbackrest.conf" <<CONF
[global]
repo1-path=$work/pgbr/repo
log-path=$work/pgbr/log
spool-path=$work/pgbr/spool
lock-path=$work/pgbr/lock
compress-type=lz4
compress-level=1
log-level-console=warn
archive-async=n
[bench]
pg1-path=$work/data
pg1-socket-path=$work/sock
pg1-port=25999
CONF
chown -R postgres "$work/pgbr"
pgbr() { as_pg pgbackrest --config="$work/pgbr/pgbackrest.conf" --stanza=bench "$@"; }
pgbr stanza-create >/dev/null

# Segments as PostgreSQL would hand them over: pg_wal/<SEG> relative to a data dir.
mkdir -p "$work/src/pg_wal"
for s in $segs; do cp "$work/segs/$s" "$work/src/pg_wal/$s"; done
chown -R postgres "$work/src"
as_pg "$bindir/pg_ctl" -D "$work/data" -m fast stop >/dev/null

run_push() { # label, command template with SEG
  local label=$1; shift
  local t0 t1
  t0=$(now)
  for s in $segs; do (cd "$work/src" && eval "$*") || { echo "$label failed on $s" >&2; exit 1; }; done
  t1=$(now)
  echo "$label $(echo "$N / ($t1 - $t0)" | bc -l) $(echo "$mib / ($t1 - $t0)" | bc -l)"
}
run_fetch() {
  local label=$1; shift
  local t0 t1
  sleep 2; rm -rf "$work/dst" 2>/dev/null || { sleep 3; rm -rf "$work/dst"; }
  mkdir -p "$work/dst/pg_wal"; chown -R postgres "$work/dst"
  t0=$(now)
  for s in $segs; do (cd "$work/dst" && eval "$*") || { echo "$label failed on $s" >&2; exit 1; }; done
  t1=$(now)
  echo "$label $(echo "$N / ($t1 - $t0)" | bc -l) $(echo "$mib / ($t1 - $t0)" | bc -l)"
}

mkdir -p "$work/store-lzop" "$work/store-lz4" "$work/store-lzo" "$work/env-lz4" "$work/env-lzo"
chown -R postgres "$work/store-lzop" "$work/store-lz4" "$work/store-lzo"
echo "file://localhost$work/store-lz4" > "$work/env-lz4/WALE_FILE_PREFIX"
echo "lz4" > "$work/env-lz4/WALDEN_COMPRESSION"
echo "file://localhost$work/store-lzo" > "$work/env-lzo/WALE_FILE_PREFIX"
echo "lzo" > "$work/env-lzo/WALDEN_COMPRESSION"
for e in env-lz4 env-lzo; do echo stderr > "$work/$e/WALE_LOG_DESTINATION"; done
# WAL-G: one segment per call (upload concurrency 1: no push-ahead of other
# .ready segments), prefetch of 8 segments like walden's -p 8. A timeout
# bounds each call, as WAL-G retries some failures forever.
mkdir -p "$work/store-walg"; chown postgres "$work/store-walg"
walgcmd="timeout -k 10 120 env HOME=$work WALG_FILE_PREFIX=$work/store-walg WALG_COMPRESSION_METHOD=lz4 WALG_UPLOAD_CONCURRENCY=1 WALG_DOWNLOAD_CONCURRENCY=8 $work/wal-g"

results=$(
  run_push "push:lzop-1-baseline" 'as_pg sh -c "lzop -1 -c pg_wal/$s > $work/store-lzop/$s.lzo"'
  run_push "push:walden-lz4" 'as_pg "$work/walden" --envdir "$work/env-lz4" wal-push pg_wal/$s 2>/dev/null'
  run_push "push:walden-lzo" 'as_pg "$work/walden" --envdir "$work/env-lzo" wal-push pg_wal/$s 2>/dev/null'
  run_push "push:pgbackrest-lz4" 'pgbr archive-push $work/src/pg_wal/$s'
  run_push "push:walg-lz4" 'as_pg $walgcmd wal-push pg_wal/$s 2>/dev/null'
  run_fetch "fetch:lzop-dc-baseline" 'as_pg sh -c "lzop -dc $work/store-lzop/$s.lzo > pg_wal/RECOVERYXLOG"'
  run_fetch "fetch:walden-lz4-p8" 'as_pg "$work/walden" --envdir "$work/env-lz4" wal-fetch -p 8 $s pg_wal/RECOVERYXLOG 2>/dev/null'
  run_fetch "fetch:walden-lzo-p8" 'as_pg "$work/walden" --envdir "$work/env-lzo" wal-fetch -p 8 $s pg_wal/RECOVERYXLOG 2>/dev/null'
  run_fetch "fetch:pgbackrest-lz4" 'pgbr archive-get $s $work/dst/pg_wal/RECOVERYXLOG'
  # WAL-G will not replace an existing file; PostgreSQL removes RECOVERYXLOG
  # before each restore_command call, so this does too.
  run_fetch "fetch:walg-lz4-p8" 'rm -f pg_wal/RECOVERYXLOG && as_pg $walgcmd wal-fetch $s pg_wal/RECOVERYXLOG 2>/dev/null'
)
# A failed push must not pass for a fast one.
for st in store-lzop store-lz4/wal_005 store-lzo/wal_005 store-walg/wal_005; do
  [ "$(ls "$work/$st" | wc -l)" -ge "$N" ] || { echo "only $(ls "$work/$st" | wc -l) objects in $st" >&2; exit 1; }
done

# Every archived segment must be in each store for the replay.
for s in $allsegs; do
  [ -f "$work/src/pg_wal/$s" ] && continue
  cp "$work/segs/$s" "$work/src/pg_wal/$s"; chown postgres "$work/src/pg_wal/$s"
  (cd "$work/src" && as_pg sh -c "lzop -1 -c pg_wal/$s > $work/store-lzop/$s.lzo")
  (cd "$work/src" && as_pg "$work/walden" --envdir "$work/env-lz4" wal-push pg_wal/$s 2>/dev/null)
  (cd "$work/src" && as_pg "$work/walden" --envdir "$work/env-lzo" wal-push pg_wal/$s 2>/dev/null)
  pgbr archive-push "$work/src/pg_wal/$s" >/dev/null 2>&1 || true
  (cd "$work/src" && as_pg $walgcmd wal-push pg_wal/$s 2>/dev/null)
done
nall=$(echo "$allsegs" | wc -l)

replay() { # label, restore_command: a real recovery of every archived segment
  local label=$1 cmd=$2 t0 t1
  rm -rf "$work/replay"; cp -a "$work/bb/base" "$work/replay"; chown -R postgres "$work/replay"; chmod 700 "$work/replay"
  cat >> "$work/replay/postgresql.conf" <<CONF
port = 25998
archive_mode = off
restore_command = '$cmd'
CONF
  touch "$work/replay/recovery.signal"; chown postgres "$work/replay/recovery.signal"
  t0=$(now)
  as_pg "$bindir/pg_ctl" -D "$work/replay" -l "$work/sock/replay-$label.log" -t 600 start >/dev/null || {
    echo "replay $label failed to start; see $work/sock/replay-$label.log" >&2; exit 1; }
  local tries=0
  until [ "$(as_pg env PGHOST=$PGHOST PGPORT=25998 "$bindir/psql" -X -A -t -d postgres -c 'select pg_is_in_recovery()' 2>/dev/null)" = f ]; do
    tries=$((tries + 1)); [ $tries -lt 6000 ] || { echo "replay $label did not finish; see $work/sock/replay-$label.log" >&2; tail "$work/sock/replay-$label.log" >&2; exit 1; }
    sleep 0.05
  done
  t1=$(now)
  as_pg "$bindir/pg_ctl" -D "$work/replay" -m immediate stop >/dev/null
  echo "replay:$label $(echo "$nall / ($t1 - $t0)" | bc -l) $(echo "$nall * 16 / ($t1 - $t0)" | bc -l)"
}
results="$results
$(replay lzop-dc-baseline "test -f $work/store-lzop/%f.lzo && lzop -dc $work/store-lzop/%f.lzo > %p")
$(replay walden-lz4-p8 "$work/walden --envdir $work/env-lz4 wal-fetch -p 8 %f %p")
$(replay walden-lzo-p8 "$work/walden --envdir $work/env-lzo wal-fetch -p 8 %f %p")
$(replay pgbackrest-lz4 "pgbackrest --config=$work/pgbr/pgbackrest.conf --stanza=bench --pg1-path=$work/replay archive-get %f %p")
$(replay walg-lz4-p8 "$walgcmd wal-fetch %f %p")"

echo
printf '%-26s %10s %10s %8s\n' case segments/s MiB/s ratio
echo "$results" | awk '
  { split($1, k, ":"); kind=k[1]; seg[$1]=$2; mibs[$1]=$3; order[NR]=$1
    if ($1 ~ /baseline/) base[kind]=$2 }
  END { for (i=1; i<=NR; i++) { c=order[i]; split(c, k, ":");
        printf "%-26s %10.1f %10.1f %7.2fx\n", c, seg[c], mibs[c], seg[c]/base[k[1]] } }'
echo "(ratio: segments/s against the lzop baseline of the same kind, same run; push/fetch: $N segments of 16 MiB, one call at a time; replay: PostgreSQL recovering all $nall archived segments from a base copy, start to promotion)"
