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
# postgres from PGDATA with a relative path. Per call: wall time around
# spawn (vfork and exec) and wait, and the process's own CPU time (wait4), which stays
# meaningful when other work shares the machine; maximum RSS of one call
# (GNU time); and
# /bin/true the same way, the floor of any process on this machine then.
#
# Also `walden version` through the front (which execs the full program for
# it), the full program directly and the WAL program (lib/walden/walden-wal,
# which the front runs for wal-push and wal-fetch without an agent on S3 and
# file stores) directly: the front's cost when it falls through, and each
# program's start-up. WALDEN_BEFORE=/path/to/an/older/walden adds its `version` row,
# for a before/after comparison of the full program's start-up.
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
(cd "$top" && CGO_ENABLED=0 go build -trimpath -tags disable_grpc_modules -ldflags "-s -w" -o "$work/lib/walden/walden" ./cmd/walden)
(cd "$top" && CGO_ENABLED=0 go build -trimpath -tags walden_wal -ldflags "-s -w" -o "$work/lib/walden/walden-wal" ./cmd/walden)
(cd "$top" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/bin/walden" ./cmd/walden-front)
front=$work/bin/walden
full=$work/lib/walden/walden
walprg=$work/lib/walden/walden-wal
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

# calltime.py OUT ROUNDS -- NAME PROGRAM ARGS... [-- NAME PROGRAM ARGS...]:
# runs the commands in turn, ROUNDS times, one process each, and writes
# "name wall_ms cpu_ms" per call. Wall time is taken around spawn (vfork
# and exec) and wait; CPU time is the child's own (wait4). "{}" in ARGS is
# replaced by each of the words of $SEGS in turn.
cat >"$work/calltime.py" <<'PY'
import os, sys, time
out, rounds, rest = sys.argv[1], int(sys.argv[2]), sys.argv[4:]
cmds, cur = [], []
for a in rest + ["--"]:
    if a == "--":
        cmds.append(cur); cur = []
    else:
        cur.append(a)
items = os.environ.get("SEGS", "").split() or [None]
devnull = os.open(os.devnull, os.O_WRONLY)
with open(out, "w") as f:
    for _ in range(rounds):
        for item in items:
            for name, prog, *args in cmds:
                argv = [prog] + [item if x == "{}" else x for x in args]
                t0 = time.perf_counter()
                # posix_spawn (vfork and exec), not fork: forking this
                # interpreter would cost more than the call measured.
                pid = os.posix_spawn(prog, argv, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1)])
                _, status, ru = os.wait4(pid, 0)
                t1 = time.perf_counter()
                if os.waitstatus_to_exitcode(status) != 0:
                    sys.exit("%s exited %d" % (" ".join(argv), os.waitstatus_to_exitcode(status)))
                f.write("%s %.3f %.3f\n" % (name, (t1 - t0) * 1e3, (ru.ru_utime + ru.ru_stime) * 1e3))
PY
# stats NAME FILE: wall and CPU min, p50, p99 (nearest rank); the minimum
# is the call least disturbed by other work.
stats() {
	awk -v n="$1" '$1 == n' "$2" | python3 -c '
import sys, math
rows = [l.split() for l in sys.stdin]
def pct(col, p):
    v = sorted(float(r[col]) for r in rows)
    return v[max(0, math.ceil(p * len(v)) - 1)]
print("wall min %.2f, p50 %.2f, p99 %.2f ms; CPU min %.2f, p50 %.2f, p99 %.2f ms (%d calls)" % (
    pct(1, 0), pct(1, .5), pct(1, .99), pct(2, 0), pct(2, .5), pct(2, .99), len(rows)))'
}
# rss PROGRAM ARGS...: maximum RSS in KiB of one call, from GNU time (whose
# own pre-exec footprint is small, unlike a forked interpreter's).
rss() { as_pg /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }

echo "timing: $n segments x $rounds rounds, front and full program alternating (load average $(cut -d' ' -f1 /proc/loadavg))"
(cd "$work/data" && as_pg env SEGS="$(echo $segs | sed 's/\([0-9A-F]\{24\}\)/pg_wal\/\1/g')" /usr/bin/python3 "$work/calltime.py" "$work/out/push" "$rounds" -- \
	front "$front" --envdir "$env_" wal-push "{}" -- full "$full" --envdir "$env_" wal-push "{}" -- true /bin/true)
served=$(metric walden_wal_pushed_total)
want=$((served0 + 2 * n * rounds))
if [ "$served" != "$want" ]; then
	echo "the agent served $((served - served0)) of $((2 * n * rounds)) calls; the figures would not compare the two paths" >&2
	exit 1
fi
before=()
if [ -n "${WALDEN_BEFORE:-}" ]; then
	cp "$WALDEN_BEFORE" "$work/before" && chmod 755 "$work/before"
	before=(-- before "$work/before" version)
fi
as_pg /usr/bin/python3 "$work/calltime.py" "$work/out/version" "$calls" -- front "$front" version -- full "$full" version -- wal "$walprg" version "${before[@]}"

echo
printf 'wal-push of a segment the agent holds (%s, file store):\n' "${WALDEN_COMPRESSION:-lz4}"
seg1=pg_wal/$(echo "$segs" | head -1)
printf '  front (/usr/bin/walden):  %s; max RSS %s KiB\n' "$(stats front "$work/out/push")" "$(cd "$work/data" && rss "$front" --envdir "$env_" wal-push "$seg1")"
printf '  full program directly:   %s; max RSS %s KiB\n' "$(stats full "$work/out/push")" "$(cd "$work/data" && rss "$full" --envdir "$env_" wal-push "$seg1")"
printf '  /bin/true (the floor):   %s\n' "$(stats true "$work/out/push")"
echo "walden version, $calls calls each (the front execs the full program for it):"
printf '  front -> full program:   %s; max RSS %s KiB\n' "$(stats front "$work/out/version")" "$(rss "$front" version)"
printf '  full program directly:   %s; max RSS %s KiB\n' "$(stats full "$work/out/version")" "$(rss "$full" version)"
printf '  WAL program directly:    %s; max RSS %s KiB\n' "$(stats wal "$work/out/version")" "$(rss "$walprg" version)"
if [ -n "${WALDEN_BEFORE:-}" ]; then
	printf '  before (WALDEN_BEFORE):  %s; max RSS %s KiB\n' "$(stats before "$work/out/version")" "$(rss "$work/before" version)"
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
