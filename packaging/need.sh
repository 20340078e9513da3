# Sourced by the package tests. need CMD PACKAGE: installs PACKAGE with
# apt-get when CMD is missing and we are root (CI machines start without
# it); otherwise fails with the hint. Uses the caller's ME and fail.
need() {
	command -v "$1" >/dev/null 2>&1 && return 0
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "$ME: installing $2 (for $1)"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null 2>&1 ||
			{ apt-get update -q >/dev/null 2>&1 &&
				DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null 2>&1; } ||
			fail "could not install $2 (apt-get install $2)"
	fi
	command -v "$1" >/dev/null 2>&1 || fail "$1 not found: apt-get install $2"
}
