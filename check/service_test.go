package check

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/storage/file"
)

func TestSandboxExplanationsNameThePathAndWhatToChange(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{&os.PathError{Op: "mkdir", Path: "/srv/store/wal_005", Err: syscall.EROFS},
			"/srv/store/wal_005 is read-only inside the service's sandbox (ProtectSystem=strict): add /srv/store to ReadWritePaths"},
		{&os.PathError{Op: "access", Path: "/srv/store", Err: syscall.EROFS},
			"/srv/store is read-only inside the service's sandbox (ProtectSystem=strict): add it to ReadWritePaths"},
		{&os.PathError{Op: "open", Path: "/srv/store/x", Err: syscall.EACCES},
			"/srv/store/x: permission denied to the service's user postgres: give it to that user (owner or group) or loosen its mode"},
		{&os.PathError{Op: "open", Path: "/home/pg/data", Err: syscall.ENOENT},
			"/home/pg/data does not exist inside the service's sandbox: create it (or it is hidden by ProtectHome=, PrivateTmp= or InaccessiblePaths=)"},
	}
	for _, c := range cases {
		if got := explain(c.err, "/srv/store", "postgres"); got != c.want {
			t.Errorf("explain(%v)\n got %q\nwant %q", c.err, got, c.want)
		}
	}
}

func TestServiceChecksTheFileStoreDataDirectoryPgWALAndDrillDirectory(t *testing.T) {
	root := t.TempDir()
	store := filepath.Join(root, "store")
	pgdata := filepath.Join(root, "data")
	for _, d := range []string{store, filepath.Join(pgdata, "global"), filepath.Join(pgdata, "pg_wal")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(pgdata, "global", "pg_control"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := storage.ParsePrefix("file://localhost" + store)
	if err != nil {
		t.Fatal(err)
	}
	rep := RunService(context.Background(), ServiceInput{Store: file.New(store), Prefix: p, PGData: pgdata,
		DrillDir: filepath.Join(root, "drills", "next")})
	got := map[string]Result{}
	for _, c := range rep.Checks {
		got[c.Name] = c
	}
	for _, name := range []string{"service store", "service pgdata", "service pg_wal", "service drill dir"} {
		if !got[name].OK {
			t.Errorf("%s: %+v", name, got[name])
		}
	}
	if d := got["service drill dir"].Detail; !strings.Contains(d, "can create WALDEN_DRILL_DIR "+filepath.Join(root, "drills", "next")+" (in "+root+")") {
		t.Errorf("drill dir detail %q", d)
	}
	if rep.Prefix != p.Raw || rep.PGData != pgdata || rep.Pid != os.Getpid() {
		t.Errorf("report header %+v", rep)
	}

	// A data directory the service cannot see is one failure naming it.
	rep = RunService(context.Background(), ServiceInput{Store: file.New(store), Prefix: p, PGData: filepath.Join(root, "gone")})
	for _, c := range rep.Checks {
		if c.Name == "service pgdata" && (c.OK || !strings.Contains(c.Detail, filepath.Join(root, "gone")+" does not exist inside the service's sandbox")) {
			t.Errorf("missing PGDATA: %+v", c)
		}
	}
}
