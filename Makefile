# walden: build, Debian package and package tests.

GO ?= go

# Package/binary version from git (packaging/version.sh); override with
# `make VERSION=...`. Evaluated once.
ifeq ($(origin VERSION),undefined)
VERSION := $(shell packaging/version.sh)
endif
# Timestamps inside the .deb and the changelog date: the commit time, so that
# rebuilds of one commit are identical; now when there is no commit yet.
ifeq ($(origin SOURCE_DATE_EPOCH),undefined)
SOURCE_DATE_EPOCH := $(shell git log -1 --format=%ct 2>/dev/null || date +%s)
endif
export VERSION SOURCE_DATE_EPOCH

# nfpm from the Go module proxy, pinned (v2.45.2 is known to be served).
NFPM ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2

.PHONY: build deb test-deb test-deb-container

# Three programs: dist/walden-core is the full program (installed as
# /usr/lib/walden/walden), dist/walden the small front installed as
# /usr/bin/walden, which asks the agent to serve wal-push and wal-fetch and
# otherwise runs the full program (found beside it as walden-core in
# dist/) or, for wal-push and wal-fetch on S3 and file stores, the WAL
# program dist/walden-wal (/usr/lib/walden/walden-wal): the full program's
# own code built with WALTAGS, which leaves out every other command and
# the GCS client, and starts in about half the time.
#
# disable_grpc_modules leaves out the GCS client's gRPC DirectPath (xDS,
# envoy's protos): walden speaks to GCS over its JSON API only, and those
# packages' initialisation was about 17 ms of every full program's start.
GOTAGS := disable_grpc_modules
WALTAGS := walden_wal
build:
	CGO_ENABLED=0 $(GO) build -trimpath -tags $(GOTAGS) -ldflags "-s -w -X main.version=$(VERSION)" -o dist/walden-core ./cmd/walden
	CGO_ENABLED=0 $(GO) build -trimpath -tags $(WALTAGS) -ldflags "-s -w -X main.version=$(VERSION)" -o dist/walden-wal ./cmd/walden
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o dist/walden ./cmd/walden-front

# dist/walden_$(VERSION)_amd64.deb; older dist/walden_*.deb are removed so
# that exactly one package is there for the tests.
deb: build
	rm -rf dist/deb && mkdir -p dist/deb
	sed -e 's/@VERSION@/$(VERSION)/g' \
	    -e "s/@DATE@/$$(LC_ALL=C date -u -R -d @$(SOURCE_DATE_EPOCH))/" \
	    packaging/changelog | gzip -9n >dist/deb/changelog.gz
	sed -e 's/@VERSION@/$(VERSION)/g' packaging/walden.1 | gzip -9n >dist/deb/walden.1.gz
	rm -f dist/walden_*.deb
	$(NFPM) pkg --packager deb --config nfpm.yaml --target dist/
	test -f dist/walden_$(VERSION)_amd64.deb

# Static checks of the .deb and a run of the packaged binary (no install).
test-deb:
	packaging/test-deb.sh

# Install/start/purge in a booted Debian 12 systemd-nspawn container (root).
test-deb-container:
	packaging/test-deb-container.sh

# The README's two commands.
.PHONY: test demo
test:
	./scripts/test.sh

demo:
	./scripts/demo.sh
