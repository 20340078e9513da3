#!/usr/bin/env bash
# verify benchmark: walden verify of a backup of at least 1 GiB (pgbench
# scale 70) plus 64 archived WAL segments, next to walden backup-fetch of
# the same backup from the same file store in the same run. Prints the
# median wall time of each, the stored bytes each read, and verify's speed
# as a ratio of backup-fetch's (bytes read per second; target >= 0.9).
# Usage: sudo bench/verify.sh   (needs postgresql-15)
# Knobs: SCALE (default 70), SEGMENTS (default 64), REPEAT (default 3),
# PORT, and any WALDEN_* variable is passed to walden.
set -euo pipefail
SCALE=${SCALE:-70}
SEGMENTS=${SEGMENTS:-64}
REPEAT=${REPEAT:-3}
PORT=${PORT:-25997}
top=$(cd "$(dirname "$0")/.." && pwd)
bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
work=$(mktemp -d /tmp/walden-vfbench.XXXXXX)
chmod 755 "$work"
aspg=(setpriv --reuid=postgres --regid=postgres --init-groups --)
cleanup() {
  "${aspg[@]}" "$bindir/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
pgenv=(env PGHOST="$work/sock" PGPORT="$PORT" PGUSER=postgres)
psql() { "${aspg[@]}" "${pgenv[@]}" "$bindir/psql" -X -q -A -t -d postgres -c "$1"; }

echo "building walden"
(cd "$top" && CGO_ENABLED=0 go build -tags disable_grpc_modules -o "$work/walden" ./cmd/walden)
chmod 755 "$work/walden"
mkdir -p "$work/sock" "$work/data" "$work/store" "$work/env"
chmod 700 "$work/data"
chown postgres "$work/sock" "$work/data" "$work/store"
printf 'file://localhost%s\n' "$work/store" > "$work/env/WALE_FILE_PREFIX"
printf 'stderr\n' > "$work/env/WALE_LOG_DESTINATION"
for v in $(compgen -e | grep '^WALDEN_' || true); do printf '%s\n' "${!v}" > "$work/env/$v"; done
chmod -R a+rX "$work/env"

echo "creating a pgbench database, scale $SCALE, archiving to the file store"
"${aspg[@]}" "$bindir/initdb" -D "$work/data" -U postgres --auth=trust --no-sync >/dev/null
cat >> "$work/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$work/sock'
port = $PORT
wal_level = replica
archive_mode = on
archive_command = '$work/walden --envdir $work/env wal-push %p'
max_wal_size = 4GB
checkpoint_timeout = 30min
CONF
"${aspg[@]}" "$bindir/pg_ctl" -D "$work/data" -l "$work/sock/pg.log" -w start >/dev/null
"${aspg[@]}" "${pgenv[@]}" "$bindir/pgbench" -i -s "$SCALE" -q postgres >/dev/null 2>&1
psql 'checkpoint'
echo "backup-push"
"${aspg[@]}" "${pgenv[@]}" "$work/walden" --envdir "$work/env" backup-push "$work/data" 2>/dev/null
echo "writing $SEGMENTS WAL segments"
psql 'create table filler(id int, pad text)'
for i in $(seq "$SEGMENTS"); do
  psql "insert into filler select g, md5(g::text) from generate_series(1, 150000) g; select pg_switch_wal()" >/dev/null
done
last=$(psql 'select pg_walfile_name(pg_current_wal_lsn())')
psql 'insert into filler values (0, null); select pg_switch_wal()' >/dev/null
until [ "$(psql "select coalesce(last_archived_wal, '') >= '$last' from pg_stat_archiver")" = t ]; do sleep 0.5; done
"${aspg[@]}" "$bindir/pg_ctl" -D "$work/data" -m fast stop >/dev/null

"$work/walden" --envdir "$work/env" verify --backup LATEST --json > "$work/report.json" 2>/dev/null
read -r backup_bytes verify_bytes segs < <(python3 -c '
import json,sys; r=json.load(open(sys.argv[1])); print(r["backups"][0]["stored_bytes"], r["bytes_read"], r["wal_segments_checked"])' "$work/report.json")
printf 'backup: %d MiB stored; verify reads %d MiB (backup + %d segments)\n' $((backup_bytes>>20)) $((verify_bytes>>20)) "$segs"

# median SECONDS of REPEAT runs of CMD (output discarded)
median() {
  local ts=()
  for _ in $(seq "$REPEAT"); do
    [ -n "${pre:-}" ] && eval "$pre"
    local s e
    s=$(date +%s.%N)
    "$@" >/dev/null 2>"$work/err.txt" || { echo "failed: $*"; tail -5 "$work/err.txt"; exit 1; }
    e=$(date +%s.%N)
    ts+=("$(echo "$e - $s" | bc -l)")
  done
  printf '%s\n' "${ts[@]}" | sort -g | sed -n "$(( (REPEAT + 1) / 2 ))p"
}
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
pre='rm -rf "$work/target"; mkdir -m 700 "$work/target"; chown postgres "$work/target"'
fetch=$(median "${aspg[@]}" "$work/walden" --envdir "$work/env" backup-fetch "$work/target" LATEST)
rm -rf "$work/target"
pre=
verify=$(median "$work/walden" --envdir "$work/env" verify --backup LATEST)
python3 - "$fetch" "$verify" "$backup_bytes" "$verify_bytes" <<'PY'
import sys
f, v, fb, vb = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
print(f"backup-fetch: {f:6.2f} s  {fb/f/2**20:7.1f} MiB/s stored")
print(f"verify:       {v:6.2f} s  {vb/v/2**20:7.1f} MiB/s stored (backup + WAL)")
print(f"verify speed / backup-fetch speed: {(vb/v)/(fb/f):.2f}x (wall-time ratio fetch/verify {f/v:.2f}x)")
PY
