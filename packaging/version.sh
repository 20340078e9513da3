#!/bin/sh
# Prints the Debian package version of the checked-out tree.
#   exact tag vX.Y.Z[-rc1] -> X.Y.Z[~rc1]  ("~" sorts a pre-release before the release)
#   any other commit       -> 0.0.0~git<YYYYMMDD>.<shortsha>  (commit date, UTC, so rebuilds agree)
#   no commit yet          -> 0.0.0~dev
set -eu
cd "$(dirname "$0")/.."

if tag=$(git describe --tags --exact-match 2>/dev/null); then
	printf '%s\n' "$tag" | sed -e 's/^v//' -e 's/-/~/g'
elif sha=$(git rev-parse --short=12 --verify -q HEAD 2>/dev/null); then
	day=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d HEAD)
	printf '0.0.0~git%s.%s\n' "$day" "$sha"
else
	echo 0.0.0~dev
fi
