#!/usr/bin/env bash
# fastpath.sh: segments/s of wal-push through the agent's fast path and
# standalone, one process per segment in sequence, as PostgreSQL's
# archiver runs archive_command.
#
#   bench/fastpath.sh [SEGMENTS [ROUNDS]]     (default 64 segments, 3 rounds)
#
# Each round pushes every segment standalone, then through the agent, into
# emptied stores; the medians are compared, since a shared machine's noise
# easily exceeds the difference being measured.
#
# WALDEN=/path/to/walden uses that binary instead of building one.
# WALDEN_COMPRESSION (default lz4) picks the codec for both runs.
# The store is a file:// prefix in a temporary directory; segments are
# 16 MiB, a quarter random and the rest zeros, roughly like real WAL.
set -euo pipefail

n=${1:-64}
rounds=${2:-3}
cd "$(dirname "$0")/.."
tmp=$(mktemp -d /tmp/walden-bench.XXXXXX)
agent_pid=
cleanup() {
	if [ -n "$agent_pid" ]; then kill "$agent_pid" 2>/dev/null || true; wait "$agent_pid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

bin=${WALDEN:-}
if [ -z "$bin" ]; then
	bin=$tmp/walden
	go build -o "$bin" ./cmd/walden
fi

# A data directory as far as the agent checks, with n segments waiting.
pgdata=$tmp/pgdata
mkdir -p "$pgdata/global" "$pgdata/pg_wal/archive_status"
echo 15 >"$pgdata/PG_VERSION"
: >"$pgdata/global/pg_control"
for i in $(seq 1 "$n"); do
	seg=$(printf '0000000100000000%08X' "$i")
	{ head -c $((4 << 20)) /dev/urandom; head -c $((12 << 20)) /dev/zero; } >"$pgdata/pg_wal/$seg"
done

port=$((20000 + RANDOM % 20000))
export WALE_LOG_DESTINATION=stderr
export WALDEN_COMPRESSION=${WALDEN_COMPRESSION:-lz4}
export WALDEN_METRICS_LISTEN=127.0.0.1:$port
export WALDEN_LOCK_DIR=$tmp

# push_all STORE SOCKET: push every segment, one process each, from PGDATA
# with a relative path as PostgreSQL does; prints the elapsed seconds.
push_all() {
	local store=$1 sock=$2
	local t0 t1
	t0=$(date +%s.%N)
	for i in $(seq 1 "$n"); do
		seg=$(printf '0000000100000000%08X' "$i")
		(cd "$pgdata" && WALE_FILE_PREFIX=file://localhost$store WALDEN_SOCKET=$sock "$bin" wal-push "pg_wal/$seg" 2>/dev/null)
	done
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc -l
}

mkdir -p "$tmp/store-standalone" "$tmp/store-agent"
WALE_FILE_PREFIX=file://localhost$tmp/store-agent WALDEN_SOCKET=$tmp/agent.sock \
	"$bin" agent --pgdata "$pgdata" 2>"$tmp/agent.log" &
agent_pid=$!
for _ in $(seq 1 100); do [ -S "$tmp/agent.sock" ] && break; sleep 0.05; done
[ -S "$tmp/agent.sock" ] || { cat "$tmp/agent.log"; echo "agent did not start" >&2; exit 1; }

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
alone_times=()
agent_times=()
for r in $(seq 1 "$rounds"); do
	rm -rf "$tmp/store-standalone/wal_005" "$tmp/store-agent/wal_005"
	a=$(push_all "$tmp/store-standalone" "$tmp/no-agent.sock")
	b=$(push_all "$tmp/store-agent" "$tmp/agent.sock")
	alone_times+=("$a")
	agent_times+=("$b")
	printf 'round %d:     standalone %.2f s, agent %.2f s\n' "$r" "$a" "$b"
	stored_a=$(find "$tmp/store-agent/wal_005" -type f | wc -l)
	stored_s=$(find "$tmp/store-standalone/wal_005" -type f | wc -l)
	[ "$stored_a" = "$n" ] && [ "$stored_s" = "$n" ] || { echo "stores hold $stored_a and $stored_s segments, want $n" >&2; exit 1; }
done
served=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^walden_wal_pushed_total/ {print $2}')
if [ "$served" != "$((n * rounds))" ]; then
	echo "the agent served $served of $((n * rounds)) pushes; the figures would not compare the two paths" >&2
	exit 1
fi
standalone=$(printf '%s\n' "${alone_times[@]}" | median)
through=$(printf '%s\n' "${agent_times[@]}" | median)

printf 'segments:    %d x 16 MiB, %s, file store, one process per segment, median of %d rounds\n' "$n" "$WALDEN_COMPRESSION" "$rounds"
printf 'standalone:  %.1f segments/s (%.2f s)\n' "$(echo "$n / $standalone" | bc -l)" "$standalone"
printf 'agent:       %.1f segments/s (%.2f s)\n' "$(echo "$n / $through" | bc -l)" "$through"
printf 'ratio:       %.2fx\n' "$(echo "$standalone / $through" | bc -l)"
