#!/bin/sh
# Installs the walden .deb into a booted Debian 12 container and checks what
# an admin would see: first install enables but does not start the service;
# with an envdir it starts, runs as postgres and answers on /healthz; log
# rotation's SIGHUP leaves it running; an upgrade restarts it only when it
# was running; a file store outside /var/lib/postgresql is read-only in the
# unit's sandbox, so a backup fails and `walden check --require-agent` says
# why, until a ReadWritePaths drop-in lets the backup succeed; remove keeps
# the configuration; purge removes what the package created and nothing else.
#
# The container: debootstrap'ed bookworm (minbase + systemd), cached in
# $WALDEN_TEST_CACHE/bookworm (default /var/cache/walden-test), booted with
# systemd-nspawn --volatile=overlay (the cache stays untouched; every run
# starts from it, writes go to a tmpfs) and --private-network (loopback only).
# Commands run inside through nsenter, so the host needs no systemd or
# machined (it works where systemd is not PID 1, e.g. in CI sandboxes).
#
# Needs root, debootstrap, systemd-container, util-linux (nsenter), procps
# (installed when missing) and, once for the cache, the Debian mirror of
# /etc/apt/sources.list* (or WALDEN_TEST_MIRROR). DEB=path/to/walden_*.deb tests that file instead of `make deb`.
# Scripts for inside the container are single-quoted on purpose:
# shellcheck disable=SC2016
set -eu
cd "$(dirname "$0")/.."

CACHE=${WALDEN_TEST_CACHE:-/var/cache/walden-test}
BASE=$CACHE/bookworm
MACHINE=${WALDEN_TEST_MACHINE:-walden-test}
PATH_IN=/usr/sbin:/usr/bin:/sbin:/bin
# Changing this recipe rebuilds the cached base.
RECIPE="bookworm minbase systemd,systemd-sysv,dbus,curl,logrotate,postgresql-15 no-apt-lists v3"

started=$(date +%s)
NSPAWN_PID=
LEADER=

ME=test-deb-container
say() { echo "$ME: $*"; }

# Dumps what explains a failure while the container is still up.
diagnose() {
	[ -n "$LEADER" ] || return 0
	echo "--- systemctl status walden.service" >&2
	ct systemctl --no-pager status walden.service >&2 2>&1 || true
	echo "--- journalctl -u walden.service" >&2
	ct journalctl --no-pager -n 40 -u walden.service >&2 2>&1 || true
}

fail() {
	echo "$ME: FAIL: $*" >&2
	diagnose
	exit 1
}

teardown() {
	if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
		[ -z "$LEADER" ] || ct systemctl poweroff >/dev/null 2>&1 || true
		i=0
		while kill -0 "$NSPAWN_PID" 2>/dev/null && [ $i -lt 60 ]; do
			sleep 0.5
			i=$((i + 1))
		done
		if kill -0 "$NSPAWN_PID" 2>/dev/null; then kill -KILL "$NSPAWN_PID" 2>/dev/null || true; fi
		wait "$NSPAWN_PID" 2>/dev/null || true
	fi
	# nspawn leaves these behind when /run is not a tmpfs of its own.
	rm -rf "/run/systemd/nspawn/propagate/$MACHINE" "/run/systemd/nspawn/propagate/$MACHINE-chroot"
}
trap teardown EXIT
trap 'exit 130' INT TERM

. "$(dirname "$0")/need.sh"

# ct CMD...: runs CMD inside the container, in all its namespaces (pid,
# mount, network: its loopback), with a clean environment.
ct() {
	nsenter --target "$LEADER" --all --root --wd \
		env -i PATH=$PATH_IN LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive TERM=dumb "$@"
}
# ct_sh SCRIPT: a shell script inside the container.
ct_sh() { ct sh -ec "$1"; }

# step MSG: reports a finished phase and how long it took.
step_t=$started
step() {
	now=$(date +%s)
	say "$* (+$((now - step_t))s)"
	step_t=$now
}

# The host's Debian mirror serving bookworm, from the apt sources.
find_mirror() {
	if [ -n "${WALDEN_TEST_MIRROR:-}" ]; then
		echo "$WALDEN_TEST_MIRROR"
		return
	fi
	{
		# deb822 (*.sources): a paragraph of Types: deb, Suites: bookworm.
		for f in /etc/apt/sources.list.d/*.sources; do
			[ -f "$f" ] && awk 'BEGIN { RS = ""; FS = "\n" }
				{ t = u = s = ""
				  for (i = 1; i <= NF; i++) {
				    if ($i ~ /^Types:/) t = $i " "
				    if ($i ~ /^URIs:/) u = $i
				    if ($i ~ /^Suites:/) s = $i " " }
				  if (t ~ /[ \t]deb[ \t]/ && s ~ /[ \t]bookworm[ \t]/) {
				    sub(/^URIs:[ \t]*/, "", u); split(u, a, /[ \t]+/); print a[1] } }' "$f"
		done
		# One-line format: deb [options] URI bookworm components.
		for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
			[ -f "$f" ] && awk '$1 == "deb" {
				i = 2
				if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
				if ($(i + 1) == "bookworm") print $i }' "$f"
		done
	} | head -n 1
}

# ---------------------------------------------------------------- checks
[ "$(id -u)" = 0 ] || fail "must run as root (debootstrap, systemd-nspawn)"
need debootstrap debootstrap
need systemd-nspawn systemd-container
need nsenter util-linux
need ps procps

if [ -z "${DEB:-}" ]; then
	say "make deb"
	make deb || fail "make deb"
	DEB=dist/walden_$(packaging/version.sh)_amd64.deb
	[ -f "$DEB" ] || fail "no package at $DEB"
	step "built $DEB"
fi
[ -f "$DEB" ] || fail "no package at $DEB"
VERSION=$(dpkg-deb -f "$DEB" Version)
say "testing $DEB"

# ---------------------------------------------------------------- base image
if [ "$(cat "$BASE/.walden-test-base" 2>/dev/null)" != "$RECIPE" ]; then
	mirror=$(find_mirror)
	[ -n "$mirror" ] || fail "no bookworm mirror in /etc/apt/sources.list*; set WALDEN_TEST_MIRROR"
	say "debootstrap bookworm from $mirror into $BASE (cached for later runs)"
	rm -rf "$BASE" "$BASE.tmp"
	mkdir -p "$CACHE"
	# PostgreSQL 15 with its default cluster 15/main: the sandbox case takes
	# a real base backup. Its package makes the postgres user and home.
	debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,curl,logrotate,postgresql-15 \
		bookworm "$BASE.tmp" "$mirror" >"$CACHE/debootstrap.log" 2>&1 ||
		{ tail -n 20 "$CACHE/debootstrap.log" >&2; fail "debootstrap failed (log: $CACHE/debootstrap.log)"; }
	chroot "$BASE.tmp" id postgres >/dev/null || fail "postgresql-15 did not create the postgres user"
	[ -f "$BASE.tmp/var/lib/postgresql/15/main/PG_VERSION" ] ||
		chroot "$BASE.tmp" pg_createcluster 15 main >>"$CACHE/debootstrap.log" 2>&1 ||
		fail "no PostgreSQL cluster 15/main (log: $CACHE/debootstrap.log)"
	echo "$MACHINE" >"$BASE.tmp/etc/hostname"
	# The container has no network and walden no dependencies: without the
	# package lists apt does not rebuild its cache on every run.
	chroot "$BASE.tmp" apt-get clean
	rm -rf "$BASE.tmp"/var/lib/apt/lists/*
	echo "$RECIPE" >"$BASE.tmp/.walden-test-base"
	mv "$BASE.tmp" "$BASE"
	step "base image ready"
fi

debdir=$(cd "$(dirname "$DEB")" && pwd)
deb=/mnt/deb/$(basename "$DEB")

# ---------------------------------------------------------------- no systemd
# Image builds and chroots: systemd is not running, so nothing may be
# started or stopped, yet enabling (symlinks) and purging must work.
systemd-nspawn --quiet --directory="$BASE" --volatile=overlay --machine="$MACHINE-chroot" \
	--private-network --bind-ro="$debdir:/mnt/deb" --register=no --keep-unit --pipe \
	env -i PATH=$PATH_IN LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive sh -ec '
	check() { if ! eval "$1"; then echo "not true without systemd: $1" >&2; exit 1; fi; }
	check "[ ! -d /run/systemd/system ]"
	apt-get install -y "$1" >/tmp/out 2>&1 || { cat /tmp/out; exit 1; }
	check "[ -L /etc/systemd/system/multi-user.target.wants/walden.service ]"
	check "[ \"\$(stat -c %U:%G /etc/wal-e.d/env)\" = root:postgres ]"
	apt-get install -y --reinstall "$1" >/tmp/out 2>&1 || { cat /tmp/out; exit 1; }
	apt-get purge -y walden >/tmp/out 2>&1 || { cat /tmp/out; exit 1; }
	check "[ ! -e /etc/systemd/system/multi-user.target.wants/walden.service ]"
	check "[ ! -e /etc/wal-e.d ] && [ ! -e /var/log/walden ] && [ ! -e /var/lib/walden ]"
' sh "$deb" >"$CACHE/chroot.log" 2>&1 ||
	{ grep -v 'Attempted to remove disk file system' "$CACHE/chroot.log" >&2
	  fail "install/upgrade/purge without systemd running (log: $CACHE/chroot.log)"; }
rm -rf "/run/systemd/nspawn/propagate/$MACHINE-chroot"
step "without systemd as PID 1: install enables, reinstall and purge work"

# ---------------------------------------------------------------- boot
log=$CACHE/nspawn.log
rm -rf "/run/systemd/nspawn/propagate/$MACHINE"
# --register=no --keep-unit: no host systemd/machined needed.
systemd-nspawn --boot --directory="$BASE" --volatile=overlay --machine="$MACHINE" \
	--private-network --bind-ro="$debdir:/mnt/deb" \
	--register=no --keep-unit --console=read-only >"$log" 2>&1 &
NSPAWN_PID=$!

# The container's PID 1: the child of nspawn that is PID 1 in its namespace.
i=0
while [ -z "$LEADER" ] && [ $i -lt 60 ]; do
	kill -0 "$NSPAWN_PID" 2>/dev/null ||
		{ tail -n 20 "$log" >&2; fail "systemd-nspawn exited while starting (log: $log)"; }
	for c in $(ps -o pid= --ppid "$NSPAWN_PID" 2>/dev/null); do
		[ "$(awk '/^NSpid:/ { print $NF }' "/proc/$c/status" 2>/dev/null)" = 1 ] && LEADER=$c
	done
	[ -n "$LEADER" ] || sleep 0.5
	i=$((i + 1))
done
[ -n "$LEADER" ] || { tail -n 20 "$log" >&2; fail "container init did not appear within 30s (log: $log)"; }

i=0
state=
while [ $i -lt 120 ]; do
	state=$(ct systemctl is-system-running 2>/dev/null || true)
	case "$state" in running | degraded) break ;; esac
	sleep 0.5
	i=$((i + 1))
done
case "$state" in
running) ;;
degraded) say "note: container is degraded: $(ct systemctl --failed --no-legend --plain | awk '{print $1}' | tr '\n' ' ')" ;;
*) tail -n 30 "$log" >&2; fail "container did not finish booting (state '$state', log: $log)" ;;
esac
step "container up ($state)"

# ---------------------------------------------------------------- install
out=$(ct apt-get install -y "$deb" 2>&1) || { echo "$out" >&2; fail "apt-get install"; }
echo "$out" | grep -q "is enabled but NOT started" || { echo "$out" >&2; fail "first install did not say the service is not started"; }
[ "$(ct systemctl is-enabled walden.service 2>&1)" = enabled ] || fail "walden.service not enabled after first install"
[ "$(ct systemctl is-active walden.service 2>&1)" = inactive ] || fail "walden.service was started by the first install"
[ "$(ct stat -c '%U:%G %a' /etc/wal-e.d/env)" = "root:postgres 750" ] ||
	fail "/etc/wal-e.d/env is $(ct stat -c '%U:%G %a' /etc/wal-e.d/env), want root:postgres 750"
[ "$(ct stat -c '%U:%G %a' /var/log/walden)" = "postgres:adm 750" ] ||
	fail "/var/log/walden is $(ct stat -c '%U:%G %a' /var/log/walden), want postgres:adm 750"
[ "$(ct walden version)" = "walden $VERSION" ] || fail "installed walden version: $(ct walden version)"
[ "$(ct /usr/lib/walden/bin/wal-e version)" = "1.1.1+walden.$VERSION" ] ||
	fail "installed wal-e version: $(ct /usr/lib/walden/bin/wal-e version)"
! ct sh -c 'command -v wal-e' >/dev/null || fail "wal-e is on PATH"
step "installed: enabled, not started, envdir and log dir in place"

# ---------------------------------------------------------------- start
ct_sh '
	d=/etc/wal-e.d/env
	echo file://localhost/var/lib/postgresql/walden-store >$d/WALE_FILE_PREFIX
	echo /var/lib/postgresql/data >$d/PGDATA
	echo /var/log/walden/walden.log >$d/WALDEN_LOG_FILE
	chgrp postgres $d/* && chmod 0640 $d/*
	install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data /var/lib/postgresql/walden-store
	# The agent accepts a PGDATA holding PG_VERSION and global/pg_control;
	# no server is needed for it until a backup is due (the sandbox case below
	# backs up the real cluster 15/main).
	install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data/global
	echo 15 >/var/lib/postgresql/data/PG_VERSION
	: >/var/lib/postgresql/data/global/pg_control
	chown postgres:postgres /var/lib/postgresql/data/PG_VERSION /var/lib/postgresql/data/global/pg_control
'
ct systemctl start walden.service || fail "systemctl start walden.service"

# /healthz answering with any HTTP status counts (503: no backup yet).
code=000
i=0
while [ $i -lt 60 ]; do
	code=$(ct curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://127.0.0.1:9351/healthz || true)
	[ "$code" != 000 ] && break
	[ "$(ct systemctl is-active walden.service)" = failed ] && break
	sleep 0.5
	i=$((i + 1))
done
[ "$code" != 000 ] || fail "http://127.0.0.1:9351/healthz did not answer within 30s"
[ "$(ct systemctl is-active walden.service)" = active ] || fail "walden.service is not active"
pid=$(ct systemctl show -p MainPID --value walden.service)
# /usr/bin/walden (the front) replaced itself with the full program.
exe=$(ct readlink "/proc/$pid/exe")
[ "$exe" = /usr/lib/walden/walden ] || fail "the agent runs $exe, want /usr/lib/walden/walden"
uid=$(ct awk '/^Uid:/ { print $2 }' "/proc/$pid/status")
[ "$uid" = "$(ct id -u postgres)" ] || fail "agent runs as uid $uid, not postgres"
[ "$(ct stat -c '%U:%G %a' /run/walden)" = "postgres:postgres 750" ] ||
	fail "/run/walden is $(ct stat -c '%U:%G %a' /run/walden), want postgres:postgres 750"
ct test -S /run/walden/agent.sock || fail "no agent socket /run/walden/agent.sock"
mcode=$(ct curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://127.0.0.1:9351/metrics || true)
[ "$mcode" = 200 ] || fail "/metrics answered HTTP $mcode, want 200"
step "walden.service active as postgres, /healthz answered HTTP $code, /metrics 200, socket in /run/walden"

# ---------------------------------------------------------------- logrotate
# Force a rotation of a non-empty log: postrotate sends SIGHUP to the main
# process, which must reopen its log and keep running.
ct_sh 'echo "test-deb-container: rotation marker" >>/var/log/walden/walden.log
	chown postgres:adm /var/log/walden/walden.log'
ct logrotate -f /etc/logrotate.d/walden || fail "logrotate -f /etc/logrotate.d/walden"
ct test -f /var/log/walden/walden.log.1 || fail "logrotate did not rotate walden.log"
sleep 2
[ "$(ct systemctl is-active walden.service)" = active ] ||
	fail "walden.service did not survive logrotate's SIGHUP"
[ "$(ct systemctl show -p MainPID --value walden.service)" = "$pid" ] ||
	fail "walden.service was restarted by logrotate's SIGHUP (the agent should reopen its log)"
ct systemctl reload walden.service || fail "systemctl reload walden.service"
[ "$(ct systemctl is-active walden.service)" = active ] || fail "walden.service not active after reload"
# Rotation left an empty walden.log; the reopened log gets the reload's
# message (this also proves /var/log/walden is writable in the sandbox).
i=0
while ! ct test -s /var/log/walden/walden.log && [ $i -lt 20 ]; do
	sleep 0.5
	i=$((i + 1))
done
ct test -s /var/log/walden/walden.log || fail "nothing logged to the reopened /var/log/walden/walden.log"
step "logrotate and reload: agent kept running"

# ---------------------------------------------------------------- upgrade
# Reinstalling runs postinst configure with the old version: an upgrade.
ct apt-get install -y --reinstall "$deb" >/dev/null 2>&1 || fail "reinstall (running service)"
sleep 1
[ "$(ct systemctl is-active walden.service)" = active ] || fail "walden.service not active after upgrade"
[ "$(ct systemctl show -p MainPID --value walden.service)" != "$pid" ] ||
	fail "upgrade did not restart the running service"
ct systemctl stop walden.service || fail "systemctl stop walden.service"
[ "$(ct systemctl is-active walden.service || true)" = inactive ] || fail "walden.service did not stop"
ct apt-get install -y --reinstall "$deb" >/dev/null 2>&1 || fail "reinstall (stopped service)"
[ "$(ct systemctl is-active walden.service || true)" = inactive ] || fail "upgrade started a stopped service"
step "upgrade: running service restarted, stopped one left stopped"

# ---------------------------------------------------------------- sandbox
# A file store outside /var/lib/postgresql: root can write it, the agent
# under ProtectSystem=strict cannot. Its root exists (walden creates only
# the directories below it), owned by postgres.
ct_sh '
	d=/etc/wal-e.d/env
	echo file://localhost/srv/walden-store >$d/WALE_FILE_PREFIX
	echo /var/lib/postgresql/15/main >$d/PGDATA
	chgrp postgres $d/* && chmod 0640 $d/*
	install -d -o postgres -g postgres -m 0750 /srv/walden-store
	rm -rf /etc/systemd/system/walden.service.d
	# A backup is complete only with its WAL in the store: archive there.
	printf "%s\n" "archive_mode = on" \
		"archive_command = '\''/usr/bin/walden --envdir /etc/wal-e.d/env wal-push %p'\''" \
		>/etc/postgresql/15/main/conf.d/walden.conf
'
ct systemctl restart postgresql@15-main.service || fail "systemctl restart postgresql@15-main.service"
i=0
while ! ct runuser -u postgres -- psql -Atqc 'select 1' >/dev/null 2>&1 && [ $i -lt 60 ]; do
	sleep 0.5
	i=$((i + 1))
done
ct runuser -u postgres -- psql -Atqc 'select 1' >/dev/null 2>&1 || fail "PostgreSQL 15/main does not answer"
[ "$(ct runuser -u postgres -- psql -Atqc 'show archive_mode')" = on ] || fail "PostgreSQL 15/main does not archive"
ct systemctl daemon-reload
ct systemctl start walden.service || fail "systemctl start walden.service (file store in /srv)"

# backup_now MARK: SIGUSR1, then waits for that run's outcome in the
# journal; prints "ok" or "failed".
backup_now() {
	cursor=$(ct journalctl --no-pager -n 0 --show-cursor -u walden.service | sed -n 's/^-- cursor: //p')
	ct systemctl kill -s SIGUSR1 --kill-who=main walden.service
	i=0
	while [ $i -lt 240 ]; do
		out=$(ct journalctl --no-pager -o cat -u walden.service --after-cursor="$cursor" 2>/dev/null || true)
		case "$out" in
		*"MSG: base backup failed"*) echo failed; return ;;
		*"MSG: retention applied"*) echo ok; return ;;
		esac
		sleep 0.5
		i=$((i + 1))
	done
	echo timeout
}

[ "$(backup_now)" = failed ] || fail "a backup to /srv/walden-store did not fail without the drop-in"
ct journalctl --no-pager -o cat -u walden.service | grep -q "read-only file system" ||
	fail "the failed backup does not say read-only file system"
set +e
cout=$(ct walden --envdir /etc/wal-e.d/env check --no-postgres --require-agent 2>&1)
ccode=$?
set -e
want="walden check: service store: cannot write to the store file://localhost/srv/walden-store: /srv/walden-store is read-only inside the service's sandbox (ProtectSystem=strict): add it to ReadWritePaths"
[ "$ccode" = 1 ] || { echo "$cout" >&2; fail "walden check --require-agent exited $ccode without the drop-in, want 1"; }
echo "$cout" | grep -qxF "$want" || { echo "$cout" >&2; fail "walden check does not say why the agent cannot write the store"; }
echo "$cout" | grep -q '^ok   store: ' || { echo "$cout" >&2; fail "the caller's own store check did not pass"; }
step "file store in /srv without the drop-in: backup failed, check named /srv/walden-store and ReadWritePaths"

# The drop-in the cookbook writes for this store.
ct_sh '
	mkdir -p /etc/systemd/system/walden.service.d
	printf "[Service]\nReadWritePaths=-/srv/walden-store\n" >/etc/systemd/system/walden.service.d/chef.conf
'
ct systemctl daemon-reload
ct systemctl restart walden.service || fail "systemctl restart walden.service with the drop-in"
cout=$(ct walden --envdir /etc/wal-e.d/env check --no-postgres --require-agent 2>&1) ||
	{ echo "$cout" >&2; fail "walden check --require-agent failed with the drop-in"; }
[ "$(backup_now)" = ok ] || fail "the backup failed with the drop-in"
ct sh -c 'ls /srv/walden-store/basebackups_005/*_backup_stop_sentinel.json' >/dev/null 2>&1 ||
	fail "no backup sentinel in /srv/walden-store after the backup"
# archive_command runs /usr/bin/walden, the front, which hands wal-push to
# the agent: the agent's count of served calls grows with the archiver's.
pushed() { ct curl -s --max-time 5 http://127.0.0.1:9351/metrics | awk '$1 == "walden_wal_pushed_total" { print $2 }'; }
n0=$(pushed)
[ -n "$n0" ] || fail "no walden_wal_pushed_total in /metrics"
ct runuser -u postgres -- psql -Atqc 'create table walden_front_probe as select generate_series(1, 1000) x; select pg_switch_wal()' >/dev/null ||
	fail "psql: switch WAL"
i=0
while [ "$(pushed)" = "$n0" ] && [ $i -lt 60 ]; do
	sleep 0.5
	i=$((i + 1))
done
if [ "$(pushed)" = "$n0" ]; then
	ct runuser -u postgres -- psql -Atqc 'select * from pg_stat_archiver' >&2 || true
	echo "--- archiver's environment" >&2
	ct sh -c 'for p in /proc/[0-9]*; do grep -q archiver $p/cmdline 2>/dev/null && tr "\0" "\n" <$p/environ; done' >&2 || true
	echo "--- agent's environment" >&2
	ct sh -c 'tr "\0" "\n" </proc/$(systemctl show -p MainPID --value walden.service)/environ' >&2 || true
	fail "archive_command through /usr/bin/walden was not served by the agent (walden_wal_pushed_total stayed $n0)"
fi
step "archive_command through /usr/bin/walden served by the agent (walden_wal_pushed_total $n0 -> $(pushed))"
ct systemctl stop walden.service postgresql@15-main.service
ct rm -rf /etc/systemd/system/walden.service.d
ct systemctl daemon-reload
step "with ReadWritePaths=-/srv/walden-store: check passed, backup stored"

# ---------------------------------------------------------------- remove, purge
ct systemctl start walden.service || fail "systemctl start walden.service"
ct apt-get remove -y walden >/dev/null 2>&1 || fail "apt-get remove walden"
[ "$(ct systemctl is-active walden.service || true)" != active ] || fail "remove left the service running"
! ct test -e /usr/bin/walden || fail "/usr/bin/walden still there after remove"
! ct test -e /usr/lib/walden || fail "/usr/lib/walden still there after remove"
ct test -f /etc/wal-e.d/env/WALE_FILE_PREFIX || fail "remove deleted the envdir"
ct apt-get purge -y walden >/dev/null 2>&1 || fail "apt-get purge walden"
! ct test -e /var/log/walden || fail "/var/log/walden still there after purge"
! ct test -e /etc/systemd/system/multi-user.target.wants/walden.service || fail "enable link left after purge"
! ct test -e /var/lib/walden || fail "/var/lib/walden left after purge"
! ct test -e /etc/logrotate.d/walden || fail "/etc/logrotate.d/walden left after purge"
ct test -f /etc/wal-e.d/env/WALE_FILE_PREFIX || fail "purge deleted a configured envdir"
# Install and purge again without configuring: the empty envdir the
# package created goes too.
ct rm -rf /etc/wal-e.d
ct apt-get install -y "$deb" >/dev/null 2>&1 || fail "second install"
ct apt-get purge -y walden >/dev/null 2>&1 || fail "second purge"
! ct test -e /etc/wal-e.d || fail "purge left the empty /etc/wal-e.d it created"
ct test -e /var/lib/postgresql || fail "purge removed /var/lib/postgresql"
step "remove kept /etc/wal-e.d; purge removed only what the package created"

# ---------------------------------------------------------------- teardown
ct systemctl poweroff >/dev/null 2>&1 || true
i=0
while kill -0 "$NSPAWN_PID" 2>/dev/null && [ $i -lt 60 ]; do
	sleep 0.5
	i=$((i + 1))
done
kill -0 "$NSPAWN_PID" 2>/dev/null && fail "container did not power off within 30s"
wait "$NSPAWN_PID" 2>/dev/null || true
NSPAWN_PID=
LEADER=
step "container powered off"
say "PASS in $(($(date +%s) - started))s ($DEB)"
