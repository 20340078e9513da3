#!/usr/bin/env bash
# Runs every test: set-up first (Debian packages), then fast checks and unit
# tests, then the cookbook and package tests, then the PostgreSQL
# end-to-end tests. Run as root (tests start PostgreSQL as `postgres`).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
export PATH=/usr/local/go/bin:$PATH
step() { printf '\n== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

step "format and vet"
bad=$(gofmt -l $(git ls-files '*.go'))
[ -z "$bad" ] || { echo "gofmt needed: $bad"; exit 1; }
go vet ./...
CGO_ENABLED=0 go build -tags disable_grpc_modules -o /dev/null ./cmd/walden
CGO_ENABLED=0 go build -tags walden_wal -o /dev/null ./cmd/walden

step "unit tests"
go test -count=1 $(go list ./... | grep -v '/cmd/walden$')

step "cookbook: rubocop and rspec"
(cd cookbook/walden && rubocop && rspec)

step "Debian package"
make test-deb
step "Debian package in a booted Debian 12 container"
make test-deb-container

step "end-to-end tests against real PostgreSQL"
go test -count=1 -timeout 45m ./cmd/walden/
step "all tests passed"
