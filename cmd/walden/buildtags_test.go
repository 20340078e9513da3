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
