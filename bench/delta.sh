#!/usr/bin/env bash
# Delta backup benchmark: on one pgbench database, in one run,
#   1. a full walden backup (lz4, file store) and a pgBackRest full backup;
#   2. UPDATEs touching about 1% of pgbench_accounts' pages, then a walden
#      delta and a pgBackRest incremental backup;
#   3. the same with about 5%;
#   4. a full walden backup of that same data (backup-push --full);
#   5. restores: walden's chain (backup-fetch of the second delta), walden's
#      full of the same data, pgBackRest's latest incremental.
# For each backup: bytes stored, wall seconds, CPU seconds (user+sys of the
# tool and its children) and peak RSS. For each walden delta: the pages it
# stores (its own member counts), their share of the page-diffed files, and
# the lz4 -1 size of those pages alone, against which its stored size is
# compared (target <= 1.2x); its push time against the full's (target
# <= 0.6x). The chain restore is compared with the full restore (target
# within 10%); when this build cannot restore a chain it reports n/a.
# Usage: sudo bench/delta.sh   (needs postgresql-15, lz4, pgbackrest, python3)
# Knobs: SCALE (pgbench scale, default 100 = ~1.5 GB), PORT, PCT1 and PCT2
# (percent of pgbench_accounts blocks updated, default 1 and 5), and any
# WALDEN_* variable is passed to walden (WALDEN_UPLOAD_CONCURRENCY also sets
# pgBackRest's process-max).
set -euo pipefail
SCALE=${SCALE:-100}
PORT=${PORT:-25996}
PCT1=${PCT1:-1}
PCT2=${PCT2:-5}
top=$(cd "$(dirname "$0")/.." && pwd)
bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
work=$(mktemp -d /tmp/walden-dlbench.XXXXXX)
chmod 755 "$work"
aspg=(setpriv --reuid=postgres --regid=postgres --init-groups --)
cleanup() {
  "${aspg[@]}" "$bindir/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
pgenv=(env PGHOST="$work/sock" PGPORT="$PORT" PGUSER=postgres)
psql() { "${aspg[@]}" "${pgenv[@]}" "$bindir/psql" -X -q -A -t -d postgres -c "$1"; }
conc=${WALDEN_UPLOAD_CONCURRENCY:-$(nproc)}

echo "building walden"
(cd "$top" && CGO_ENABLED=0 go build -tags disable_grpc_modules -o "$work/walden" ./cmd/walden)
chmod 755 "$work/walden"
mkdir -p "$work/sock" "$work/data" "$work/store" "$work/env"
chmod 700 "$work/data"
chown postgres "$work/sock" "$work/data" "$work/store"
printf 'file://localhost%s\n' "$work/store" > "$work/env/WALE_FILE_PREFIX"
printf 'stderr\n' > "$work/env/WALE_LOG_DESTINATION"
printf 'lz4\n' > "$work/env/WALDEN_COMPRESSION"
printf '10\n' > "$work/env/WALDEN_DELTA_MAX_STEPS"
for v in $(compgen -e | grep '^WALDEN_' || true); do printf '%s\n' "${!v}" > "$work/env/$v"; done
chmod -R a+rX "$work/env"
walden=("${aspg[@]}" "${pgenv[@]}" "$work/walden" --envdir "$work/env")

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
psql 'vacuum analyze' >/dev/null
psql 'checkpoint'
bytes=$(( $(du -sb "$work/data" | cut -f1) - $(du -sb "$work/data/pg_wal" | cut -f1) ))
mib=$(echo "$bytes / 1048576" | bc -l)
printf 'PGDATA without pg_wal: %.0f MiB\n' "$mib"

mkdir -p "$work/pgbr/repo" "$work/pgbr/log" "$work/pgbr/spool" "$work/pgbr/lock"
cat > "$work/pgbr/pgbackrest.conf" <<CONF
[global]
repo1-path=$work/pgbr/repo
log-path=$work/pgbr/log
spool-path=$work/pgbr/spool
lock-path=$work/pgbr/lock
compress-type=lz4
compress-level=1
process-max=$conc
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

results="$work/results"
: > "$results"
# timed LABEL CMD...: runs CMD under /usr/bin/time -v; sets wall, cpu, rss
# (MiB) and ok (1 when it succeeded); its stderr stays in $work/err.txt.
timed() {
  local label=$1; shift
  ok=1
  if ! /usr/bin/time -v -o "$work/time.txt" "$@" >"$work/out.txt" 2>"$work/err.txt"; then
    ok=0
    echo "  $label failed:"; tail -5 "$work/err.txt" | sed 's/^/    /'
  fi
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; print s}' "$work/time.txt")
  cpu=$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {print u+s}' "$work/time.txt")
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2/1024}' "$work/time.txt")
}
# row LABEL STORED EXTRA: one line of the result table.
row() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$wall" "$cpu" "$rss" "$2" "${3:-}" >> "$results"; }

# walden_push LABEL ARGS...: a walden backup-push; sets name and stored.
walden_push() {
  local label=$1; shift
  timed "$label" "${walden[@]}" backup-push "$work/data" "$@"
  [ "$ok" = 1 ] || exit 1
  name=$(grep -o 'Backup base_[0-9A-F_D]*[ :]' "$work/err.txt" | tail -1 | cut -d' ' -f2 | tr -d ':')
  stored=$(du -sb "$work/store/basebackups_005/$name" | cut -f1)
  stored=$(( stored + $(cat "$work/store/basebackups_005/$name"_*sentinel.json | wc -c) ))
  printf '  %-34s %-80s %7.2f s %12d bytes\n' "$label" "$name" "$wall" "$stored"
}

# pgbr_push LABEL TYPE: a pgBackRest backup; sets stored (its repository
# size as pgBackRest reports it).
pgbr_push() {
  local label=$1 type=$2
  timed "$label" "${pgbr[@]}" backup --type="$type"
  [ "$ok" = 1 ] || exit 1
  stored=$("${pgbr[@]}" info --output=json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["backup"][-1]["info"]["repository"]["delta"])')
  printf '  %-34s %-80s %7.2f s %12d bytes\n' "$label" "$type" "$wall" "$stored"
}

# change PCT: update one row in PCT% of pgbench_accounts' blocks, chosen at
# random (by ctid), then checkpoint so the pages are on disk.
change() {
  local pct=$1 nblocks
  nblocks=$(psql "select pg_relation_size('pgbench_accounts') / current_setting('block_size')::int")
  psql "update pgbench_accounts set abalance = abalance + 1 where ctid = any (array(
          select format('(%s,1)', b)::tid from generate_series(0, $nblocks - 1) b where random() < $pct / 100.0))"
  psql 'checkpoint'
}

# delta_pages NAME: the pages a walden delta stores in its page-delta
# members, their share of all pages of the page-diffed files (its file
# list), and the lz4 -1 size of those pages alone. Sets pages, share, pagesz.
delta_pages() {
  local dir="$work/store/basebackups_005/$1/tar_partitions"
  lz4 -dc "$work/store/basebackups_005/$1/walden_files.json.lz4" > "$work/files.json"
  python3 -c '
import json, struct, subprocess, sys, tarfile
fl = json.load(open(sys.argv[2]))
total_pages = sum(f["size"] // fl["block_size"] for f in fl["files"] if f["kind"] == "pages")
changed = 0
out = open(sys.argv[1], "wb")
for part in sys.argv[3:]:
    lz = subprocess.Popen(["lz4", "-dc", part], stdout=subprocess.PIPE)
    with tarfile.open(fileobj=lz.stdout, mode="r|") as tf:
        for m in tf:
            if not m.name.endswith(".walden_delta"):
                continue
            b = tf.extractfile(m).read()
            assert b[:8] == b"WLDNDLT1"
            blcksz, n, size = struct.unpack_from("<IIQ", b, 8)
            changed += n
            out.write(b[24 + 4 * n:])
    lz.stdout.read()
    assert lz.wait() == 0
out.close()
print(changed, total_pages)
' "$work/pages.bin" "$work/files.json" "$dir"/part_*.tar.lz4 > "$work/pages.txt"
  read -r pages total < "$work/pages.txt"
  share=$(echo "100 * $pages / ($total + ($total == 0))" | bc -l)
  pagesz=$(lz4 -1 -c "$work/pages.bin" | wc -c)
  rm -f "$work/pages.bin"
}

echo "full backups"
walden_push "walden full" --full
full_wall=$wall full_name=$name
row "walden full" "$stored"
pgbr_push "pgBackRest full" full
row "pgBackRest full" "$stored"

step=0
for pct in "$PCT1" "$PCT2"; do
  step=$((step + 1))
  echo "change: one row in ${pct}% of pgbench_accounts' blocks"
  change "$pct"
  walden_push "walden delta $step (${pct}%)"
  delta_pages "$name"
  row "walden delta $step (${pct}%)" "$stored" "$(printf 'pages %d (%.2f%% of relation main-fork pages); lz4 of pages alone %d; stored/that %.2fx; push/full push %.2fx' \
    "$pages" "$share" "$pagesz" "$(echo "$stored / $pagesz" | bc -l)" "$(echo "$wall / $full_wall" | bc -l)")"
  last_delta=$name
  pgbr_push "pgBackRest incr $step (${pct}%)" incr
  row "pgBackRest incr $step (${pct}%)" "$stored"
done

echo "full backup of the same data as the last delta"
walden_push "walden full (same data)" --full
row "walden full (same data)" "$stored"
same_full=$name

echo "restores"
restore_dir() { rm -rf "$work/target"; mkdir -p "$work/target"; chmod 700 "$work/target"; chown postgres "$work/target"; }
restore_dir
timed "walden chain restore" "${walden[@]}" backup-fetch "$work/target" "$last_delta"
# A build without chain restore may leave page-delta members or a partial
# tree: only a complete tree counts.
chain_ok=0
if [ "$ok" = 1 ] && [ -f "$work/target/global/pg_control" ] && ! find "$work/target" -name '*.walden_delta' | grep -q .; then
  chain_ok=1
fi
chain_wall=$wall chain_cpu=$cpu chain_rss=$rss
restore_dir
timed "walden full restore" "${walden[@]}" backup-fetch "$work/target" "$same_full"
[ "$ok" = 1 ] || exit 1
if [ "$chain_ok" = 1 ]; then
  printf '%s\t%s\t%s\t%s\t-\tchain/full %.2fx\n' "walden chain restore (full + 2 deltas)" "$chain_wall" "$chain_cpu" "$chain_rss" \
    "$(echo "$chain_wall / $wall" | bc -l)" >> "$results"
else
  printf 'walden chain restore (full + 2 deltas)\tn/a\tn/a\tn/a\t-\tthis build cannot restore a chain\n' >> "$results"
fi
row "walden full restore (same data)" "-"
restore_dir
timed "pgBackRest restore" "${pgbr[@]}" --pg1-path="$work/target" restore
[ "$ok" = 1 ] || exit 1
row "pgBackRest restore (full + 2 incr)" "-"
rm -rf "$work/target"

echo
printf 'PGDATA %.0f MiB without pg_wal (pgbench scale %s); %s CPUs; concurrency %s; lz4; file store / local repository\n' "$mib" "$SCALE" "$(nproc)" "$conc"
printf '| %s | %s | %s | %s | %s | %s |\n' "case" "seconds" "CPU s" "peak RSS MiB" "bytes stored" "notes"
printf '|---|---|---|---|---|---|\n'
while IFS=$'\t' read -r label w c r s e; do
  printf '| %s | %s | %s | %s | %s | %s |\n' "$label" "$w" "$c" "$r" "$s" "$e"
done < "$results"
