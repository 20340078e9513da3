#!/usr/bin/env bash
# Base backup benchmark: walden backup-push and backup-fetch of a pgbench
# database of at least 1 GiB, with the file store and with an in-memory S3
# server on 127.0.0.1 (bench/s3server), next to `tar -cf - PGDATA | lz4 -1`
# (push) and `lz4 -dc | tar -x` (fetch), pgBackRest (lz4, process-max=2) and
# WAL-G (lz4, same upload/download concurrency as walden) on the same data in
# the same run. Prints MiB/s of PGDATA, CPU seconds
# (user+sys of the tool and its children) and peak RSS, and each speed as a
# ratio of the tar|lz4 baseline.
# Usage: sudo bench/basebackup.sh   (needs postgresql-15, lz4, pgbackrest, and
# WAL-G at ../shared/anchors/wal-g/wal-g from the repository root or WALG_BIN)
# Each measurement is the median of REPEAT runs (default 3).
# Knobs: SCALE (pgbench scale, default 70 = ~1.05 GiB), PORT, S3PORT, and
# any WALDEN_* variable (e.g. WALDEN_PARTITION_SIZE) is passed to walden.
# WALG_TIMEOUT (default 1800 s) bounds each WAL-G call: its backup-fetch
# retries forever on some errors instead of failing.
set -euo pipefail
SCALE=${SCALE:-70}
PORT=${PORT:-25998}
S3PORT=${S3PORT:-29123}
REPEAT=${REPEAT:-3}
top=$(cd "$(dirname "$0")/.." && pwd)
WALG_BIN=${WALG_BIN:-$top/../shared/anchors/wal-g/wal-g}
WALG_TIMEOUT=${WALG_TIMEOUT:-1800}
if [ ! -x "$WALG_BIN" ]; then
  echo "bench/basebackup.sh: no WAL-G binary at $WALG_BIN (set WALG_BIN)" >&2; exit 1
fi
bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
work=$(mktemp -d /tmp/walden-bbbench.XXXXXX)
chmod 755 "$work"
s3pid=
cleanup() {
  [ -n "$s3pid" ] && kill "$s3pid" 2>/dev/null || true
  setpriv --reuid=postgres --regid=postgres --init-groups -- "$bindir/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
# setpriv, not runuser: no PAM session, and the measured process is the tool.
aspg=(setpriv --reuid=postgres --regid=postgres --init-groups --)
as_pg() { "${aspg[@]}" "$@"; }
pgenv=(env PGHOST="$work/sock" PGPORT="$PORT" PGUSER=postgres)

echo "building walden and the S3 server"
(cd "$top" && CGO_ENABLED=0 go build -tags disable_grpc_modules -o "$work/walden" ./cmd/walden && go build -o "$work/s3server" ./bench/s3server)
chmod 755 "$work/walden"
# A copy postgres can execute whatever the permissions on the way to WALG_BIN.
cp "$WALG_BIN" "$work/wal-g"; chmod 755 "$work/wal-g"

mkdir -p "$work/sock" "$work/data" "$work/store" "$work/env-file" "$work/env-s3"
chmod 700 "$work/data"
chown postgres "$work/sock" "$work/data" "$work/store"
printf 'file://localhost%s\n' "$work/store" > "$work/env-file/WALE_FILE_PREFIX"
printf 's3://bench/pg\n' > "$work/env-s3/WALE_S3_PREFIX"
printf 'http+path://127.0.0.1:%s\n' "$S3PORT" > "$work/env-s3/WALE_S3_ENDPOINT"
printf 'us-east-1\n' > "$work/env-s3/AWS_REGION"
printf 'bench\n' > "$work/env-s3/AWS_ACCESS_KEY_ID"
printf 'benchsecret\n' > "$work/env-s3/AWS_SECRET_ACCESS_KEY"
for e in env-file env-s3; do
  printf 'stderr\n' > "$work/$e/WALE_LOG_DESTINATION"
  for v in $(compgen -e | grep '^WALDEN_' || true); do printf '%s\n' "${!v}" > "$work/$e/$v"; done
done
chmod -R a+rX "$work/env-file" "$work/env-s3"

echo "creating a pgbench database, scale $SCALE"
as_pg "$bindir/initdb" -D "$work/data" -U postgres --auth=trust --no-sync >/dev/null
cat >> "$work/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$work/sock'
port = $PORT
wal_level = replica
archive_mode = on
archive_command = '$work/walden --envdir $work/env-file wal-push %p'
max_wal_size = 4GB
checkpoint_timeout = 30min
CONF
as_pg "$bindir/pg_ctl" -D "$work/data" -l "$work/sock/pg.log" -w start >/dev/null
as_pg "${pgenv[@]}" "$bindir/pgbench" -i -s "$SCALE" -q postgres >/dev/null 2>&1
as_pg "${pgenv[@]}" "$bindir/psql" -X -q -c 'checkpoint' postgres
# Every tool here leaves pg_wal's contents out (they are in the WAL
# archive), so the data compared is PGDATA without them.
bytes=$(( $(du -sb "$work/data" | cut -f1) - $(du -sb "$work/data/pg_wal" | cut -f1) ))
mib=$(echo "$bytes / 1048576" | bc -l)
printf 'PGDATA without pg_wal: %.0f MiB\n' "$mib"

results="$work/results"
: > "$results"
# once LABEL OP CMD...: runs CMD under /usr/bin/time -v and appends wall
# seconds, CPU seconds, peak RSS and, with S3, the server's CPU to $runs.
once() {
  local label=$1 op=$2; shift 2
  local s3a=0 s3b=0
  [ -n "$s3pid" ] && s3a=$(awk '{print $14+$15}' "/proc/$s3pid/stat")
  if ! /usr/bin/time -v -o "$work/time.txt" "$@" >"$work/out.txt" 2>"$work/err.txt"; then
    echo "$label $op failed:"; tail -20 "$work/err.txt"; exit 1
  fi
  [ -n "$s3pid" ] && s3b=$(awk '{print $14+$15}' "/proc/$s3pid/stat")
  local wall user sys rss s3cpu
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; print s}' "$work/time.txt")
  user=$(awk -F': ' '/User time/ {print $2}' "$work/time.txt")
  sys=$(awk -F': ' '/System time/ {print $2}' "$work/time.txt")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")
  s3cpu=$(echo "($s3b - $s3a) / $(getconf CLK_TCK)" | bc -l)
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$op" "$wall" "$(echo "$user + $sys" | bc -l)" "$rss" "$s3cpu" >> "$runs"
}
# measure LABEL OP CMD...: REPEAT runs (each into an empty $work/target,
# removed after), the median run by wall time goes into the results.
measure() {
  local label=$1 op=$2; shift 2
  runs="$work/runs"; : > "$runs"
  for _ in $(seq "$REPEAT"); do
    mkdir -p "$work/target"; chmod 700 "$work/target"; chown postgres "$work/target"
    once "$label" "$op" "$@"
    if [ "$op" = fetch ] && [ -d "$work/target/base" ] && [ ! -f "$work/target/global/pg_control" ]; then
      echo "$label restored no global/pg_control"; exit 1
    fi
    rm -rf "$work/target"
  done
  sort -t$'\t' -k3,3g "$runs" | sed -n "$(( (REPEAT + 1) / 2 ))p" >> "$results"
  printf '  %-28s %-5s median %6.2f s of %s runs\n' "$label" "$op" "$(tail -1 "$results" | cut -f3)" "$REPEAT"
}

echo "push"
measure "tar | lz4 -1 (baseline)" push bash -c "tar --exclude='./pg_wal/*' -cf - -C '$work/data' . | lz4 -1 -q > /dev/null"
measure "walden, file store" push "${aspg[@]}" "${pgenv[@]}" "$work/walden" --envdir "$work/env-file" backup-push "$work/data"

echo "fetch"
tar --exclude='./pg_wal/*' -cf - -C "$work/data" . | lz4 -1 -q > "$work/baseline.tar.lz4"
measure "lz4 -dc | tar -x (baseline)" fetch bash -c "lz4 -dc '$work/baseline.tar.lz4' | tar -xf - -C '$work/target' && sync -f '$work/target'"
rm -f "$work/baseline.tar.lz4"
measure "walden, file store" fetch "${aspg[@]}" "$work/walden" --envdir "$work/env-file" backup-fetch "$work/target" LATEST

echo "WAL-G"
# Concurrency as walden's (its defaults: upload = CPUs, download = 2 x CPUs);
# WAL-G's tar partition threshold (1 GiB) already equals walden's partition
# size. backup-fetch fsyncs each file (WALG_TAR_DISABLE_FSYNC unset), as
# walden does. backup-push waits for its last segment to be archived, so
# each store's WAL-G rows run while the server archives into a working store.
ncpu=$(nproc)
walgcommon=(HOME="$work" WALG_COMPRESSION_METHOD=lz4
  WALG_UPLOAD_CONCURRENCY="${WALDEN_UPLOAD_CONCURRENCY:-$ncpu}"
  WALG_DOWNLOAD_CONCURRENCY="${WALDEN_DOWNLOAD_CONCURRENCY:-$((ncpu * 2))}")
mkdir -p "$work/walg-store"; chown postgres "$work/walg-store"
walgfile=(timeout -k 10 "$WALG_TIMEOUT" "${aspg[@]}" "${pgenv[@]}" "${walgcommon[@]}" WALG_FILE_PREFIX="$work/walg-store" "$work/wal-g")
measure "WAL-G (lz4), file store" push "${walgfile[@]}" backup-push "$work/data"
measure "WAL-G (lz4), file store" fetch "${walgfile[@]}" backup-fetch "$work/target" LATEST
rm -rf "$work/walg-store"

echo "S3 (gofakes3 in memory on 127.0.0.1:$S3PORT)"
"$work/s3server" -addr "127.0.0.1:$S3PORT" -bucket bench > "$work/s3.log" 2>&1 &
s3pid=$!
for _ in $(seq 50); do grep -q listening "$work/s3.log" && break; sleep 0.1; done
# backup-push certifies a backup only once its WAL is in the same store:
# from here on the server archives into the S3 store.
as_pg "${pgenv[@]}" "$bindir/psql" -X -q -c "alter system set archive_command = '$work/walden --envdir $work/env-s3 wal-push %p'" -c 'select pg_reload_conf()' postgres >/dev/null
measure "walden, S3" push "${aspg[@]}" "${pgenv[@]}" "$work/walden" --envdir "$work/env-s3" backup-push "$work/data"
measure "walden, S3" fetch "${aspg[@]}" "$work/walden" --envdir "$work/env-s3" backup-fetch "$work/target" LATEST
walgs3=(timeout -k 10 "$WALG_TIMEOUT" "${aspg[@]}" "${pgenv[@]}" "${walgcommon[@]}"
  WALG_S3_PREFIX=s3://bench/walg AWS_ENDPOINT="http://127.0.0.1:$S3PORT" AWS_S3_FORCE_PATH_STYLE=true
  AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=benchsecret "$work/wal-g")
measure "WAL-G (lz4), S3" push "${walgs3[@]}" backup-push "$work/data"
measure "WAL-G (lz4), S3" fetch "${walgs3[@]}" backup-fetch "$work/target" LATEST
kill "$s3pid"; wait "$s3pid" 2>/dev/null || true; s3pid=

echo "pgBackRest"
mkdir -p "$work/pgbr/repo" "$work/pgbr/log" "$work/pgbr/spool" "$work/pgbr/lock"
cat > "$work/pgbr/pgbackrest.conf" <<CONF
[global]
repo1-path=$work/pgbr/repo
log-path=$work/pgbr/log
spool-path=$work/pgbr/spool
lock-path=$work/pgbr/lock
compress-type=lz4
compress-level=1
process-max=2
start-fast=y
archive-check=n
log-level-console=warn
[bench]
pg1-path=$work/data
pg1-socket-path=$work/sock
pg1-port=$PORT
CONF
chown -R postgres "$work/pgbr"
pgbr=("${aspg[@]}" pgbackrest --config="$work/pgbr/pgbackrest.conf" --stanza=bench)
"${pgbr[@]}" stanza-create >/dev/null
measure "pgBackRest (lz4, 2 proc)" push "${pgbr[@]}" backup --type=full
measure "pgBackRest (lz4, 2 proc)" fetch "${pgbr[@]}" --pg1-path="$work/target" restore

echo
printf 'PGDATA %.0f MiB without pg_wal (pgbench scale %s); %s CPUs; speeds relative to the tar|lz4 baseline of the same operation\n' "$mib" "$SCALE" "$(nproc)"
printf '%-28s %-5s %8s %9s %8s %9s %7s %s\n' tool op seconds "MiB/s" "CPU s" "RSS MiB" ratio "server CPU s"
base_push=$(awk -F'\t' '$2=="push" && $1 ~ /baseline/ {print $3}' "$results")
base_fetch=$(awk -F'\t' '$2=="fetch" && $1 ~ /baseline/ {print $3}' "$results")
while IFS=$'\t' read -r label op wall cpu rss s3cpu; do
  base=$base_push; [ "$op" = fetch ] && base=$base_fetch
  extra=""; case "$label" in *S3*) extra=$(printf '%.2f' "$s3cpu");; esac
  printf '%-28s %-5s %8.2f %9.1f %8.2f %9.1f %6.2fx %s\n' "$label" "$op" "$wall" "$(echo "$mib / $wall" | bc -l)" "$cpu" "$(echo "$rss / 1024" | bc -l)" "$(echo "$base / $wall" | bc -l)" "$extra"
done < "$results"
