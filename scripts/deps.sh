#!/usr/bin/env bash
# Installs what walden's build, tests and demo need, from Debian's packages.
# Idempotent: does nothing when everything is present. Go comes from
# /usr/local/go or PATH; Go modules from the module proxy.
set -euo pipefail
pkgs=(postgresql-15 postgresql-client-15 lzop lz4 zstd gnupg daemontools pgbackrest bc
      ruby rubocop ruby-rspec lintian dpkg-dev fakeroot debootstrap systemd-container curl
      prometheus  # promtool, for the tests of packaging/monitoring
      liblzo2-2 libsodium23 libbrotli1)  # the WAL-G build beside the repository
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian package starts a "main" cluster on 5432; tests use their own.
if command -v pg_ctlcluster >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q online; then
  pg_lsclusters -h | awk '$4=="online"{print $1, $2}' | while read -r v c; do pg_ctlcluster "$v" "$c" stop || true; done
fi
export PATH=/usr/local/go/bin:$PATH
command -v go >/dev/null || { echo "Go is required (expected in /usr/local/go)" >&2; exit 1; }
