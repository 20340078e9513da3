package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/walden-pg/walden/internal/pgtest"
)

// gcsFake is fake-gcs-server on 127.0.0.1 holding bucket, and the host:port
// for STORAGE_EMULATOR_HOST. The XML API serves downloads only for its
// public host, so the port is chosen before the server starts.
func gcsFake(t *testing.T, bucket string) (*fakestorage.Server, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1", Port: uint16(port),
		PublicHost: fmt.Sprintf("127.0.0.1:%d", port)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bucket})
	return srv, strings.TrimPrefix(srv.URL(), "http://")
}

// runbookKeyring makes a GnuPG home owned by postgres and imports key
// (a public or a secret key export) into it, as the runbook's hosts do.
func runbookKeyring(t *testing.T, home, key string) {
	t.Helper()
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	pgtest.Chown(t, home)
	t.Cleanup(func() { exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run() })
	cmd := pgtest.Command(t, nil, "", "gpg", "--homedir", home, "--batch", "--import", key)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gpg --import %s: %v\n%s", key, err, out)
	}
}

// TestRunbookRestoreThroughEnvdirFromEncryptedGCSOnAKeyringOnlyHost runs
// the operators' WAL-E runbook command for command, with
// /opt/wal-e/bin/wal-e linked to walden: archiving with `envdir ENV wal-e
// --gpg-key-id KEY wal-push %p` to GCS, backup-push the same way; then, on
// a restore host whose envdir names no key and whose keyring holds the
// secret key, backup-list, backup-fetch DIR LATEST and a restore_command
// of `envdir ENV wal-e wal-fetch -p 4` with recovery_target_timeline
// latest, and `envdir ENV wal-e restore`. Both restores must reach the
// primary's last transaction.
func TestRunbookRestoreThroughEnvdirFromEncryptedGCSOnAKeyringOnlyHost(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	dir := bbScratch(t)
	walE := filepath.Join(dir, "opt", "wal-e", "bin", "wal-e")
	if err := os.MkdirAll(filepath.Dir(walE), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bin, walE); err != nil {
		t.Fatal(err)
	}
	srv, emulator := gcsFake(t, "acme-wal")
	pub, sec, email := bbGPGKey(t, dir, "fleet")
	primaryHome, restoreHome := filepath.Join(dir, "gnupg-primary"), filepath.Join(dir, "gnupg-restore")
	runbookKeyring(t, primaryHome, pub)
	runbookKeyring(t, restoreHome, sec)

	common := map[string]string{
		"WALE_GS_PREFIX":        "gs://acme-wal/prod/db1",
		"STORAGE_EMULATOR_HOST": emulator,
		"WALE_RETRIES":          "3",
	}
	primaryEnv, restoreEnv := filepath.Join(dir, "env-primary"), filepath.Join(dir, "env-restore")
	bbEnvdir(t, primaryEnv, common)
	bbEnvdir(t, primaryEnv, map[string]string{"GNUPGHOME": primaryHome})
	bbEnvdir(t, restoreEnv, common)
	bbEnvdir(t, restoreEnv, map[string]string{"GNUPGHOME": restoreHome})

	c := pgtest.New(t, pgtest.Options{Conf: map[string]string{
		"wal_level":       "replica",
		"archive_mode":    "on",
		"archive_command": pgtest.Quote("/usr/bin/envdir " + primaryEnv + " " + walE + " --gpg-key-id " + email + " wal-push %p"),
	}})
	c.Start(t)
	c.Pgbench(t, "-i", "-s", "2", "-q")
	c.Psql(t, "create table marker(id int primary key, note text)")
	bbMust(t, bbExec(t, pgtest.Command(t, c.Env(), "", "/usr/bin/envdir", primaryEnv, walE, "--gpg-key-id", email, "backup-push", c.Dir)), "runbook backup-push")
	c.Psql(t, "insert into marker values (1, 'after the backup')")
	c.Pgbench(t, "-n", "-t", "200")
	c.Psql(t, "insert into marker values (2, 'last')")
	bbArchiveAll(t, c)
	want := bbStateOf(t, c)

	// Everything in the bucket is encrypted: OpenPGP packets, no lz4 frame.
	objs, _, err := srv.ListObjectsWithOptions("acme-wal", fakestorage.ListOptions{})
	if err != nil || len(objs) == 0 {
		t.Fatalf("bucket: %v %v", objs, err)
	}
	for _, o := range objs {
		if !strings.Contains(o.Name, "/wal_005/") && !strings.Contains(o.Name, "/tar_partitions/") {
			continue
		}
		obj, err := srv.GetObject("acme-wal", o.Name)
		if err != nil {
			t.Fatal(err)
		}
		if len(obj.Content) == 0 || obj.Content[0]&0x80 == 0 || bytes.HasPrefix(obj.Content, []byte{0x04, 0x22, 0x4d, 0x18}) {
			t.Fatalf("%s is not an OpenPGP message", o.Name)
		}
	}

	runbook := func(what string, args ...string) bbResult {
		t.Helper()
		return bbMust(t, bbExec(t, pgtest.Command(t, nil, "", "/usr/bin/envdir", append([]string{restoreEnv, walE}, args...)...)), what)
	}
	list := runbook("runbook backup-list", "backup-list")
	if !strings.Contains(list.stdout, "base_") {
		t.Fatalf("backup-list shows no backup:\n%s", list.stdout)
	}

	// The runbook by hand: backup-fetch, then restore_command.
	r := pgtest.New(t, pgtest.Options{NoInit: true, Conf: map[string]string{
		"archive_mode":             "off",
		"restore_command":          pgtest.Quote("/usr/bin/envdir " + restoreEnv + " " + walE + ` wal-fetch -p 4 "%f" "%p"`),
		"recovery_target_timeline": pgtest.Quote("latest"),
	}})
	runbook("runbook backup-fetch", "backup-fetch", r.Dir, "LATEST")
	bbWriteFile(t, filepath.Join(r.Dir, "recovery.signal"), "")
	r.Start(t)
	r.WaitRecoveryDone(t, 180*time.Second)
	if got := bbStateOf(t, r); got != want {
		t.Errorf("backup-fetch + restore_command: got %+v, want %+v", got, want)
	}
	r.Stop(t)

	// The same through walden restore, run the way every other command is.
	r2 := bbRestoreTarget(t)
	res := runbook("runbook restore", "restore", r2.Dir, "--start", "--no-archive")
	if got := bbStateOf(t, r2); got != want {
		t.Errorf("envdir wal-e restore: got %+v, want %+v\n%s", got, want, bbTail(res.stderr, 3000))
	}
	auto, _ := os.ReadFile(filepath.Join(r2.Dir, "postgresql.auto.conf"))
	if !strings.Contains(string(auto), "restore_command = '"+walE+" --envdir ") {
		t.Errorf("restore_command does not call %s with the settings:\n%s", walE, auto)
	}
}
