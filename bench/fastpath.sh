#!/usr/bin/env bash
# fastpath.sh: what one archive_command call costs when the agent already
# holds the segment, through /usr/bin/walden (the front) and through the
# full program directly, in the same run; and what the front adds when it
# has to run the full program.
#
#   sudo bench/fastpath.sh [SEGMENTS [ROUNDS]]     (default 32 segments, 5 rounds)
#
# Set-up: the package's layout in a temporary directory (bin/walden the
# front, lib/walden/walden the full program), a real PostgreSQL 15 cluster
# with archive_mode on and archiving held back (empty archive_command), and
# the agent on it, push-ahead at its default (on). pgbench and WAL switches
# make SEGMENTS .ready segments; the agent stores them ahead. Then every
# segment is pushed ROUNDS times, one process per call as PostgreSQL's
# archiver runs archive_command, alternating front and full program, as
# postgres from PGDATA with a relative path. Each call's wall time is taken
# around the process (bash $EPOCHREALTIME), so it includes fork and exec.
#
# Also: `walden version` (the front execs the full program for it) against
# the full program directly, wall time and maximum RSS (/usr/bin/time -f %M).
# WALDEN_BEFORE=/path/to/an/older/walden adds its `version` rows for a
# before/after comparison of the full program's start-up.
set -euo pipefail

n=${1:-32}
rounds=${2:-5}
calls=${CALLS:-50} # per `version` measurement
top=$(cd "$(dirname "$0")/.." && pwd)
bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
work=$(mktemp -d /tmp/walden-fastpath.XXXXXX)
chmod 755 "$work"
agent_pid=
# setpriv, not runuser: runuser goes through PAM and costs ~300 ms a call.
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }
cleanup() {
	if [ -n "$agent_pid" ]; then kill "$agent_pid" 2>/dev/null || true; wait "$agent_pid" 2>/dev/null || true; fi
	as_pg "$bindir/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

echo "building the front and the full program"
mkdir -p "$work/bin" "$work/lib/walden"
(cd "$top" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/lib/walden/walden" ./cmd/walden)
(cd "$top" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/bin/walden" ./cmd/walden-front)
front=$work/bin/walden
full=$work/lib/walden/walden
chmod -R a+rX "$work/bin" "$work/lib"

echo "a PostgreSQL cluster with $n segments waiting, and the agent"
mkdir -p "$work/data" "$work/sock" "$work/store" "$work/run" "$work/env" "$work/out"
chmod 700 "$work/data"
chown postgres "$work/data" "$work/sock" "$work/store" "$work/run" "$work/out"
as_pg "$bindir/initdb" -D "$work/data" -U postgres --auth=trust --no-sync >/dev/null
cat >>"$work/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$work/sock'
port = 25998
wal_level = replica
archive_mode = on
archive_command = ''
max_wal_size = 4GB
CONF
as_pg "$bindir/pg_ctl" -D "$work/data" -l "$work/sock/pg.log" -w start >/dev/null
port=$((20000 + RANDOM % 20000))
env_=$work/env
echo "file://localhost$work/store" >"$env_/WALE_FILE_PREFIX"
echo stderr >"$env_/WALE_LOG_DESTINATION"
echo "127.0.0.1:$port" >"$env_/WALDEN_METRICS_LISTEN"
echo "$work/run/agent.sock" >"$env_/WALDEN_SOCKET"
echo "$work/run" >"$env_/WALDEN_LOCK_DIR"
echo "0 0 1 1 *" >"$env_/WALDEN_BACKUP_SCHEDULE"
echo "${WALDEN_COMPRESSION:-lz4}" >"$env_/WALDEN_COMPRESSION"
chown -R postgres "$env_"
# Not through as_pg: $! must be the agent itself for the cleanup's kill.
setpriv --reuid=postgres --regid=postgres --init-groups -- "$full" --envdir "$env_" agent --pgdata "$work/data" 2>"$work/agent.log" &
agent_pid=$!
for _ in $(seq 1 200); do [ -S "$work/run/agent.sock" ] && break; sleep 0.05; done
[ -S "$work/run/agent.sock" ] || { cat "$work/agent.log"; echo "agent did not start" >&2; exit 1; }

pg() { as_pg env PGHOST="$work/sock" PGPORT=25998 "$@"; }
pg "$bindir/pgbench" -i -s 5 -q postgres >/dev/null 2>&1
while [ "$(ls "$work/data/pg_wal/archive_status" | grep -c '\.ready$')" -lt "$n" ]; do
	pg "$bindir/psql" -X -q -c 'insert into pgbench_history select * from pgbench_history limit 1; select pg_switch_wal()' postgres >/dev/null
	pg "$bindir/pgbench" -n -c 2 -t 200 postgres >/dev/null 2>&1
done
segs=$(ls "$work/data/pg_wal/archive_status" | sed -n 's/\.ready$//p' | sort | head -n "$n")
for s in $segs; do
	for _ in $(seq 1 600); do
		[ -f "$work/store/wal_005/$s.${WALDEN_COMPRESSION:-lz4}" ] && break
		sleep 0.1
	done
	[ -f "$work/store/wal_005/$s.${WALDEN_COMPRESSION:-lz4}" ] || { tail -20 "$work/agent.log"; echo "push-ahead did not store $s" >&2; exit 1; }
done
metric() { curl -s "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
served0=$(metric walden_wal_pushed_total)

# stats: milliseconds, one per line -> "p50 p99 mean" (nearest rank).
stats() { sort -g | awk '{a[NR]=$1; s+=$1} END {p50=a[int(NR*0.5+0.999999)]; p99=a[int(NR*0.99+0.999999)]; printf "p50 %.2f ms, p99 %.2f ms, mean %.2f ms (%d calls)", p50, p99, s/NR, NR}'; }

# Timed as postgres in one shell, so that setpriv is not in the figures.
cat >"$work/time-push.sh" <<'SH'
# time-push.sh OUT_FRONT OUT_FULL FRONT FULL ENVDIR ROUNDS SEG...
out_front=$1 out_full=$2 front=$3 full=$4 env=$5 rounds=$6
shift 6
for r in $(seq 1 "$rounds"); do
	for s in "$@"; do
		t0=$EPOCHREALTIME; "$front" --envdir "$env" wal-push "pg_wal/$s" || exit 1; t1=$EPOCHREALTIME
		echo "$t0 $t1" >>"$out_front"
		t0=$EPOCHREALTIME; "$full" --envdir "$env" wal-push "pg_wal/$s" || exit 1; t1=$EPOCHREALTIME
		echo "$t0 $t1" >>"$out_full"
	done
done
SH
cat >"$work/time-cmd.sh" <<'SH'
# time-cmd.sh OUT CALLS PROGRAM ARGS...
out=$1 calls=$2
shift 2
for _ in $(seq 1 "$calls"); do
	t0=$EPOCHREALTIME; "$@" >/dev/null || exit 1; t1=$EPOCHREALTIME
	echo "$t0 $t1" >>"$out"
done
SH
chmod 755 "$work/time-push.sh" "$work/time-cmd.sh"
ms() { awk '{printf "%.3f\n", ($2 - $1) * 1000}' "$1"; }

echo "timing: $n segments x $rounds rounds, front and full program alternating"
(cd "$work/data" && as_pg bash "$work/time-push.sh" "$work/out/t-front" "$work/out/t-full" "$front" "$full" "$env_" "$rounds" $segs)
served=$(metric walden_wal_pushed_total)
want=$((served0 + 2 * n * rounds))
if [ "$served" != "$want" ]; then
	echo "the agent served $((served - served0)) of $((2 * n * rounds)) calls; the figures would not compare the two paths" >&2
	exit 1
fi

for prog in "$front" "$full"; do
	as_pg bash "$work/time-cmd.sh" "$work/out/v-$(basename "$(dirname "$prog")")" "$calls" "$prog" version
done
rss() { as_pg /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
rss_push() { (cd "$work/data" && as_pg /usr/bin/time -f %M "$1" --envdir "$env_" wal-push "pg_wal/$(echo "$segs" | head -1)" 2>&1 >/dev/null | tail -1); }

echo
printf 'wal-push of a segment the agent holds (%s, file store):\n' "${WALDEN_COMPRESSION:-lz4}"
printf '  front (/usr/bin/walden):   %s; max RSS %s KiB\n' "$(ms "$work/out/t-front" | stats)" "$(rss_push "$front")"
printf '  full program directly:    %s; max RSS %s KiB\n' "$(ms "$work/out/t-full" | stats)" "$(rss_push "$full")"
echo "walden version ($calls calls each; the front execs the full program for it):"
printf '  front -> full program:    %s; max RSS %s KiB\n' "$(ms "$work/out/v-bin" | stats)" "$(rss "$front" version)"
printf '  full program directly:    %s; max RSS %s KiB\n' "$(ms "$work/out/v-walden" | stats)" "$(rss "$full" version)"
if [ -n "${WALDEN_BEFORE:-}" ]; then
	cp "$WALDEN_BEFORE" "$work/before" && chmod 755 "$work/before"
	as_pg bash "$work/time-cmd.sh" "$work/out/v-before" "$calls" "$work/before" version
	printf '  before (%s): %s; max RSS %s KiB\n' "$WALDEN_BEFORE" "$(ms "$work/out/v-before" | stats)" "$(rss "$work/before" version)"
fi
