#!/bin/sh
# Static checks of the walden .deb, without installing it:
#   build (make deb), lintian (no errors), control fields, file list, and
#   the packaged binary's stamped version under both of its names.
# DEB=path/to/walden_*.deb tests that file instead of building one.
# Needs make, go, dpkg-deb and lintian (installed when missing and root);
# file and systemd-analyze are used when present. Exits non-zero on the
# first failure.
set -eu
cd "$(dirname "$0")/.."

ME=test-deb
fail() {
	echo "$ME: FAIL: $*" >&2
	exit 1
}
step() { echo "test-deb: $*"; }

. "$(dirname "$0")/need.sh"

need dpkg-deb dpkg
need lintian lintian

if [ -z "${DEB:-}" ]; then
	step "make deb"
	make deb || fail "make deb"
	VERSION=$(packaging/version.sh)
	DEB=dist/walden_${VERSION}_amd64.deb
fi
[ -f "$DEB" ] || fail "no package at $DEB"
VERSION=$(dpkg-deb -f "$DEB" Version)
step "package $DEB (version $VERSION)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step "lintian"
# Errors fail; warnings are shown (overrides: packaging/lintian-overrides).
lintian --fail-on error --display-level '>=warning' "$DEB" >"$work/lintian" 2>&1 ||
	{ cat "$work/lintian" >&2; fail "lintian reports errors"; }
grep -v 'running with root privileges' "$work/lintian" || true

step "control fields"
field() { dpkg-deb -f "$DEB" "$1"; }
expect_field() {
	got=$(field "$1")
	[ "$got" = "$2" ] || fail "control field $1 is '$got', want '$2'"
}
expect_field Package walden
expect_field Architecture amd64
expect_field Section database
expect_field Priority optional
expect_field Suggests gnupg
[ -n "$(field Version)" ] || fail "no Version field"
[ -n "$(field Maintainer)" ] || fail "no Maintainer field"
# A static binary: nothing to depend on.
for f in Depends Pre-Depends Recommends; do
	[ -z "$(field "$f")" ] || fail "unexpected $f: $(field "$f")"
done
dpkg-deb -f "$DEB" Package Version Architecture Section Priority Suggests Installed-Size

step "file list"
dpkg-deb -c "$DEB" >"$work/contents" || fail "dpkg-deb -c"
# expect_entry PERMS PATH [LINK-TARGET]
expect_entry() {
	line=$(awk -v p="./$2" '$6 == p' "$work/contents")
	[ -n "$line" ] || fail "$2 is not in the package"
	case "$line" in "$1"*) ;; *) fail "$2 has mode $(echo "$line" | cut -c1-10), want $1" ;; esac
	if [ $# -eq 3 ]; then
		target=$(echo "$line" | awk '{print $8}')
		[ "$target" = "$3" ] || fail "$2 links to '$target', want '$3'"
	fi
}
expect_entry -rwxr-xr-x usr/bin/walden
expect_entry -rwxr-xr-x usr/lib/walden/walden
expect_entry -rwxr-xr-x usr/lib/walden/walden-wal
expect_entry lrwxrwxrwx usr/lib/walden/bin/wal-e ../../../bin/walden
expect_entry -rw-r--r-- lib/systemd/system/walden.service
expect_entry -rw-r--r-- etc/logrotate.d/walden
expect_entry -rw-r--r-- usr/share/doc/walden/copyright
expect_entry -rw-r--r-- usr/share/doc/walden/changelog.gz
expect_entry -rw-r--r-- usr/share/doc/walden/README.Debian
expect_entry -rw-r--r-- usr/share/doc/walden/README.envdir
expect_entry -rw-r--r-- usr/share/man/man1/walden.1.gz
expect_entry -rw-r--r-- usr/share/lintian/overrides/walden
# Not shipped: the envdir is made by postinst so that dpkg never replaces it,
# and no wal-e on PATH (a pip-installed WAL-E may own that name).
for p in etc/wal-e.d usr/bin/wal-e usr/local/bin/wal-e; do
	! grep -q " \./$p/\?\( \|$\)" "$work/contents" || fail "$p must not be in the package"
done
# Root-owned everything.
awk '$2 != "root/root" { print; bad = 1 } END { exit bad }' "$work/contents" ||
	fail "files not owned by root/root"

step "control scripts"
dpkg-deb -e "$DEB" "$work/control"
for s in postinst prerm postrm; do
	[ -x "$work/control/$s" ] || fail "no executable $s"
	sh -n "$work/control/$s" || fail "$s: syntax"
done
# The logrotate snippet is a conffile (admin edits are kept); nothing else is.
[ "$(cat "$work/control/conffiles" 2>/dev/null)" = /etc/logrotate.d/walden ] ||
	fail "conffiles is '$(cat "$work/control/conffiles" 2>/dev/null)', want /etc/logrotate.d/walden"

step "changelog"
mkdir "$work/root"
dpkg-deb -x "$DEB" "$work/root"
zcat "$work/root/usr/share/doc/walden/changelog.gz" | head -1 | grep -q "^walden ($VERSION) " ||
	fail "changelog.gz does not start with walden ($VERSION)"

step "packaged binary"
out=$("$work/root/usr/bin/walden" version) || fail "walden version exited non-zero"
[ "$out" = "walden $VERSION" ] || fail "walden version printed '$out', want 'walden $VERSION'"
echo "  usr/bin/walden version -> $out"
out=$("$work/root/usr/lib/walden/bin/wal-e" version) || fail "wal-e version exited non-zero"
[ "$out" = "1.1.1+walden.$VERSION" ] || fail "wal-e version printed '$out', want '1.1.1+walden.$VERSION'"
echo "  usr/lib/walden/bin/wal-e version -> $out"
out=$("$work/root/usr/lib/walden/walden-wal" version) || fail "usr/lib/walden/walden-wal version exited non-zero"
[ "$out" = "walden $VERSION" ] || fail "usr/lib/walden/walden-wal version printed '$out', want 'walden $VERSION'"
echo "  usr/lib/walden/walden-wal version -> $out"
if command -v file >/dev/null 2>&1; then
	for b in usr/bin/walden usr/lib/walden/walden usr/lib/walden/walden-wal; do
		file -L "$work/root/$b" | grep -q 'statically linked' ||
			fail "$b is not statically linked: $(file -L "$work/root/$b")"
	done
fi
# /usr/bin/walden is the front: small, and it must run the full program it
# was packaged with (version above came from there) and fail clearly without.
size=$(stat -c %s "$work/root/usr/bin/walden")
[ "$size" -lt $((16 << 20)) ] || fail "usr/bin/walden is $size bytes: the front links something heavy"
echo "  usr/bin/walden $size bytes, usr/lib/walden/walden $(stat -c %s "$work/root/usr/lib/walden/walden") bytes, usr/lib/walden/walden-wal $(stat -c %s "$work/root/usr/lib/walden/walden-wal") bytes"
mv "$work/root/usr/lib/walden/walden" "$work/core"
rc=0
"$work/root/usr/bin/walden" wal-push pg_wal/000000010000000000000001 2>"$work/err" || rc=$?
[ "$rc" = 2 ] && grep -q 'usr/lib/walden/walden' "$work/err" ||
	fail "without the full program, wal-push exited $rc: $(cat "$work/err")"
mv "$work/core" "$work/root/usr/lib/walden/walden"
# Without an agent, for a file store, the front runs the WAL program beside
# the full program: its package initialisation has the AWS SDK but not the
# agent's Prometheus client.
rc=0
env -i PATH=/usr/bin:/bin GODEBUG=inittrace=1 WALE_FILE_PREFIX="file://localhost$work/store" WALE_LOG_DESTINATION=stderr \
	WALDEN_SOCKET="$work/no-agent.sock" WALDEN_LOCK_DIR="$work" \
	"$work/root/usr/bin/walden" wal-push "$work/pg_wal/000000010000000000000001" >/dev/null 2>"$work/err" || rc=$?
{ [ "$rc" = 1 ] && grep -q 'could not find file' "$work/err" && grep -q '^init github.com/aws/' "$work/err" &&
	! grep -q '^init github.com/prometheus/' "$work/err"; } ||
	fail "wal-push without an agent did not run usr/lib/walden/walden-wal (exit $rc): $(grep -v '^init ' "$work/err")"

step "unit"
unit=$work/root/lib/systemd/system/walden.service
for want in 'ExecStart=/usr/bin/walden --envdir /etc/wal-e.d/env agent' \
	User=postgres Group=postgres Restart=on-failure RuntimeDirectory=walden \
	NoNewPrivileges=yes ProtectSystem=strict PrivateTmp=yes ProtectHome=yes \
	'CapabilityBoundingSet='; do
	grep -qxF "$want" "$unit" || fail "walden.service lacks '$want'"
done
if command -v systemd-analyze >/dev/null 2>&1; then
	# Unknown or malformed settings; /usr/bin/walden is not installed here.
	systemd-analyze verify --man=no "$unit" 2>&1 |
		grep -v 'Command /usr/bin/walden is not executable' >"$work/verify" || true
	[ ! -s "$work/verify" ] || { cat "$work/verify" >&2; fail "systemd-analyze verify"; }
fi

echo "test-deb: PASS ($DEB)"
