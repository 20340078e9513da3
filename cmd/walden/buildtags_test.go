package main

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/walden-pg/walden/internal/pgtest"
)

// TestShippedFullProgramLeavesOutGRPCDirectPath pins the tag the package's
// build uses: without it the GCS client links gRPC DirectPath (xDS and
// envoy's protos), whose initialisation every wal-fetch and wal-push
// without an agent pays, though walden speaks only GCS's JSON API.
func TestShippedFullProgramLeavesOutGRPCDirectPath(t *testing.T) {
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^GOTAGS := (\S+)$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("the Makefile sets no GOTAGS")
	}
	if string(m[1]) != pgtest.BuildTags {
		t.Fatalf("the Makefile builds with tags %q, the end-to-end tests with %q", m[1], pgtest.BuildTags)
	}
	if !regexp.MustCompile(`build [^\n]*-tags \$\(GOTAGS\)[^\n]*-o dist/walden-core \./cmd/walden\n`).Match(mk) {
		t.Fatal("the Makefile does not build dist/walden-core with -tags $(GOTAGS)")
	}
	out, err := exec.Command("go", "list", "-tags", pgtest.BuildTags, "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := "\n" + string(out)
	if !strings.Contains(deps, "\ncloud.google.com/go/storage\n") {
		t.Fatal("the full program no longer links the GCS client")
	}
	for _, pkg := range []string{"google.golang.org/grpc/xds/googledirectpath", "google.golang.org/grpc/balancer/rls", "github.com/envoyproxy/"} {
		if strings.Contains(deps, "\n"+pkg) {
			t.Errorf("built as shipped, the full program links %s", pkg)
		}
	}
}

// TestWALProgramLinksNeitherGCSNorTheOtherCommands pins what the WAL
// program (the Makefile's dist/walden-wal) leaves out: its start-up is
// what every wal-push and wal-fetch without an agent pays, and the GCS
// client, the agent with its metrics, base backups and libpq were about
// half of the full program's.
func TestWALProgramLinksNeitherGCSNorTheOtherCommands(t *testing.T) {
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^WALTAGS := (\S+)$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("the Makefile sets no WALTAGS")
	}
	if string(m[1]) != pgtest.WALTags {
		t.Fatalf("the Makefile builds the WAL program with tags %q, the tests with %q", m[1], pgtest.WALTags)
	}
	if !regexp.MustCompile(`build [^\n]*-tags \$\(WALTAGS\)[^\n]*-o dist/walden-wal \./cmd/walden\n`).Match(mk) {
		t.Fatal("the Makefile does not build dist/walden-wal with -tags $(WALTAGS)")
	}
	out, err := exec.Command("go", "list", "-tags", pgtest.WALTags, "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := "\n" + string(out)
	// What wal-push and wal-fetch need must still be there.
	for _, pkg := range []string{"github.com/walden-pg/walden/storage/s3", "github.com/walden-pg/walden/storage/file",
		"github.com/walden-pg/walden/wal", "github.com/walden-pg/walden/gpg", "github.com/walden-pg/walden/walelog"} {
		if !strings.Contains(deps, "\n"+pkg+"\n") {
			t.Errorf("the WAL program does not link %s", pkg)
		}
	}
	for _, pkg := range []string{"cloud.google.com/", "google.golang.org/grpc", "github.com/prometheus/",
		"github.com/walden-pg/walden/agent\n", "github.com/walden-pg/walden/agent/fastpath/server", "github.com/walden-pg/walden/basebackup",
		"github.com/walden-pg/walden/storage/gcs", "github.com/jackc/", "github.com/go-co-op/gocron"} {
		if strings.Contains(deps, "\n"+pkg) {
			t.Errorf("the WAL program links %s", strings.TrimSpace(pkg))
		}
	}
}
