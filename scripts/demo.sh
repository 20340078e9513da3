#!/usr/bin/env bash
# walden's main job on an embedded default: a throwaway local PostgreSQL
# cluster archived to a local file prefix. It archives WAL under pgbench
# load through archive_command, takes a base backup, then restores it into
# a second cluster to a point in time and checks the data. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
export PATH=/usr/local/go/bin:$PATH
bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
demo=${WALDEN_DEMO_DIR:-/tmp/walden-demo}
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }
say() { printf '\n== %s\n' "$*"; }

for d in "$demo/data" "$demo/restored"; do
  [ -f "$d/postmaster.pid" ] && as_pg "$bindir/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1 || true
done
rm -rf "$demo"
mkdir -p "$demo"/{data,sock,store,env,bin,lib/walden}
chmod 700 "$demo/data"

say "building walden"
# As the package installs it: bin/walden is the small front, which runs the
# full program from ../lib/walden/walden for whatever no agent serves, or
# for wal-push and wal-fetch the WAL program, ../lib/walden/walden-wal.
CGO_ENABLED=0 go build -tags disable_grpc_modules -o "$demo/lib/walden/walden" ./cmd/walden
CGO_ENABLED=0 go build -tags walden_wal -o "$demo/lib/walden/walden-wal" ./cmd/walden
CGO_ENABLED=0 go build -o "$demo/bin/walden" ./cmd/walden-front
walden=$demo/bin/walden

say "envdir $demo/env (as /etc/wal-e.d/env would be)"
echo "file://localhost$demo/store" > "$demo/env/WALE_FILE_PREFIX"
echo "lz4" > "$demo/env/WALDEN_COMPRESSION"
echo "stderr" > "$demo/env/WALE_LOG_DESTINATION"
echo "$demo/sock" > "$demo/env/PGHOST"
echo "25950" > "$demo/env/PGPORT"
echo "postgres" > "$demo/env/PGUSER"
ls "$demo/env"
chown -R postgres "$demo"
chmod 755 "$demo"

say "a PostgreSQL cluster archiving through walden"
as_pg "$bindir/initdb" -D "$demo/data" -U postgres --auth=trust --no-sync >/dev/null
cat >> "$demo/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$demo/sock'
port = 25950
wal_level = replica
archive_mode = on
archive_command = '$walden --envdir $demo/env wal-push %p'
CONF
as_pg "$bindir/pg_ctl" -D "$demo/data" -l "$demo/sock/primary.log" -w start >/dev/null
psql() { as_pg env PGHOST="$demo/sock" PGPORT=25950 "$bindir/psql" -X -A -t -q -d postgres "$@"; }
as_pg env PGHOST="$demo/sock" PGPORT=25950 "$bindir/pgbench" -i -s 5 -q postgres 2>/dev/null
psql -c "create table marker(id int, note text, at timestamptz default clock_timestamp())"
psql -c "insert into marker(id, note) values (1, 'before backup')"

say "walden backup-push"
as_pg "$walden" --envdir "$demo/env" backup-push "$demo/data"
as_pg "$walden" --envdir "$demo/env" backup-list --detail

say "more load, then a marker we will restore up to"
as_pg env PGHOST="$demo/sock" PGPORT=25950 "$bindir/pgbench" -n -c 2 -T 10 postgres >/dev/null 2>&1
psql -c "insert into marker(id, note) values (2, 'target')"
sleep 1.1
target=$(psql -c "select now()")
want=$(psql -c "select sum(abalance) from pgbench_accounts")
sleep 1.1
psql -c "insert into marker(id, note) values (3, 'after target')"
psql -c "select pg_switch_wal()" >/dev/null
sleep 3

say "walden restore to $target into $demo/restored"
mkdir -p "$demo/restored"; chown postgres "$demo/restored"; chmod 700 "$demo/restored"
as_pg "$walden" --envdir "$demo/env" restore "$demo/restored" --target-time "$target"
cat >> "$demo/restored/postgresql.conf" <<CONF
port = 25951
archive_mode = off
CONF
as_pg "$bindir/pg_ctl" -D "$demo/restored" -l "$demo/sock/restored.log" -w -t 300 start >/dev/null
for _ in $(seq 1 300); do
  [ "$(as_pg env PGHOST="$demo/sock" PGPORT=25951 "$bindir/psql" -X -A -t -d postgres -c 'select pg_is_in_recovery()' 2>/dev/null)" = f ] && break
  sleep 1
done
got=$(as_pg env PGHOST="$demo/sock" PGPORT=25951 "$bindir/psql" -X -A -t -q -d postgres -c "select sum(abalance) from pgbench_accounts")
notes=$(as_pg env PGHOST="$demo/sock" PGPORT=25951 "$bindir/psql" -X -A -t -q -d postgres -c "select string_agg(note, ',' order by id) from marker")
echo "restored markers: $notes; balance sum: $got (primary at target: $want)"
as_pg "$bindir/pg_ctl" -D "$demo/restored" -m fast stop >/dev/null
as_pg "$bindir/pg_ctl" -D "$demo/data" -m fast stop >/dev/null
if [ "$notes" = "before backup,target" ] && [ "$got" = "$want" ]; then
  say "demo passed: point-in-time restore holds exactly the data at the target"
else
  say "demo FAILED"; exit 1
fi
