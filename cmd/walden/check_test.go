package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/walden-pg/walden/internal/pgtest"
)

// checkRun is one `walden --envdir ENV check ...` run as postgres, as the
// cookbook and operators run it.
type checkRun struct {
	stdout, stderr string
	code           int
}

// problems are the stderr lines, each one problem.
func (r checkRun) problems() []string {
	s := strings.TrimRight(r.stderr, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func runCheck(t *testing.T, bin, env string, args ...string) checkRun {
	t.Helper()
	cmd := pgtest.Command(t, nil, "", bin, append([]string{"--envdir", env, "check"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := checkRun{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return r
}

// wantOneProblem asserts exit 1 and exactly one problem line starting with
// prefix, also shown as a FAIL line on stdout.
func wantOneProblem(t *testing.T, r checkRun, prefix string) string {
	t.Helper()
	p := r.problems()
	if r.code != 1 || len(p) != 1 || !strings.HasPrefix(p[0], "walden check: "+prefix) {
		t.Fatalf("want exit 1 and one problem %q, got exit %d, problems:\n%s\nstdout:\n%s", prefix, r.code, r.stderr, r.stdout)
	}
	if !strings.Contains(r.stdout, "FAIL "+strings.TrimPrefix(p[0], "walden check: ")+"\n") {
		t.Fatalf("stdout lacks the FAIL line for %q:\n%s", p[0], r.stdout)
	}
	t.Log(p[0])
	return p[0]
}

// nativeKey writes an Ed25519/X25519 OpenPGP secret key file readable only
// by postgres and returns its fingerprint and path.
func nativeKey(t *testing.T, dir string) (string, string) {
	t.Helper()
	e, err := openpgp.NewEntity("walden check", "", "check@example.invalid", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PrivateKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SerializePrivate(w, nil); err != nil {
		t.Fatal(err)
	}
	w.Close()
	path := filepath.Join(dir, "secret.asc")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	pgtest.Chown(t, path)
	return fmt.Sprintf("%X", e.PrimaryKey.Fingerprint), path
}

func writeStoreFile(t *testing.T, store, key string, data []byte) {
	t.Helper()
	path := filepath.Join(store, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func merged(a map[string]string, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// TestCheckAgainstRealPostgres runs the built binary as postgres against a
// real PostgreSQL 15: a good configuration passes and lists the store's
// backups and WAL, and each kind of broken configuration fails with exit 1
// and the one line naming what is wrong. The subtests share one cluster
// and run in order; the later ones change the server's settings.
func TestCheckAgainstRealPostgres(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	envdirBin, err := exec.LookPath("envdir")
	if err != nil {
		t.Fatal("envdir (daemontools) is required: apt-get install daemontools")
	}
	pg := pgtest.New(t, pgtest.Options{})
	store := pg.MkDir(t, "store")
	pgVars := map[string]string{"PGHOST": pg.SocketDir, "PGPORT": strconv.Itoa(pg.Port), "PGUSER": "postgres"}
	base := merged(pgVars, map[string]string{
		"WALE_FILE_PREFIX":     "file://localhost" + store,
		"WALE_LOG_DESTINATION": "stderr",
	})
	good := filepath.Join(pg.Base, "env-good")
	writeEnvdir(t, good, base)
	pg.WriteConf(t, map[string]string{
		"archive_mode":    "on",
		"wal_level":       "replica",
		"archive_command": pgtest.Quote(fmt.Sprintf("%s %s %s wal-push %%p", envdirBin, good, bin)),
	})
	pg.Start(t)

	// A walden backup and a WAL-E one, complete (sentinels beside their
	// directories), one started but unfinished, and WAL on timeline 1 well
	// past anything the server archives during the test.
	const waldenBackup = "base_000000010000000000000002_00000040"
	const walEBackup = "base_000000010000000000000040_00000040"
	writeStoreFile(t, store, "basebackups_005/"+waldenBackup+"/extended_version.txt", []byte("PostgreSQL 15"))
	writeStoreFile(t, store, "basebackups_005/"+waldenBackup+"_backup_stop_sentinel.json",
		[]byte(`{"wal_segment_backup_stop": "000000010000000000000002", "wal_segment_offset_backup_stop": "00000040", "expanded_size_bytes": 1, "spec": {"base_prefix": "/x/", "tablespaces": []}, "walden": {"format_version": 1, "compression": "lz4", "encryption_key_fingerprint": "", "partitions": []}}`))
	fixtureSentinel, err := os.ReadFile("../../testdata/fixtures/wal-e/basic/store/basebackups_005/" + walEBackup + "_backup_stop_sentinel.json")
	if err != nil {
		t.Fatal(err)
	}
	writeStoreFile(t, store, "basebackups_005/"+walEBackup+"_backup_stop_sentinel.json", fixtureSentinel)
	writeStoreFile(t, store, "basebackups_005/base_000000010000000000000070_00000040/extended_version.txt", []byte("unfinished"))
	writeStoreFile(t, store, "wal_005/0000000100000000000000A0.lz4", []byte("segment"))
	writeStoreFile(t, store, "wal_005/0000000100000000000000A1.lz4", []byte("segment"))
	pgtest.Chown(t, store)

	t.Run("GoodConfigurationPassesAndListsBackupsAndWAL", func(t *testing.T) {
		r := runCheck(t, bin, good)
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("exit %d, stderr:\n%s\nstdout:\n%s", r.code, r.stderr, r.stdout)
		}
		for _, want := range []string{
			"ok   store: wrote, read and deleted a probe at file://localhost" + store + "\n",
			"skip gpg: not configured",
			"ok   postgres: connected as postgres to database postgres of PostgreSQL 15.",
			"ok   archive_mode: is on\n",
			"ok   archive_command: calls " + bin + " wal-push\n",
			"ok   wal_level: is replica\n",
			"ok   archiver: nothing archived yet; no failures\n",
			"ok   backups: 2 found (1 by walden, 1 by WAL-E)",
			"     " + waldenBackup + "  walden  ",
			"     " + walEBackup + "  WAL-E   ",
			"     timeline 00000001: 0000000100000000000000A0 .. 0000000100000000000000A1 (2 segments)\n",
		} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
			}
		}
		if strings.Contains(r.stdout, "base_000000010000000000000070_00000040") {
			t.Errorf("an unfinished backup is listed:\n%s", r.stdout)
		}
		if _, err := os.Stat(filepath.Join(store, "walden_check")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the probe left %s/walden_check behind (%v)", store, err)
		}
	})

	t.Run("JSONOutputIsOneObjectOnStdout", func(t *testing.T) {
		r := runCheck(t, bin, good, "--json")
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
		}
		var rep struct {
			OK     bool `json:"ok"`
			Checks []struct {
				Name string `json:"name"`
				OK   bool   `json:"ok"`
			} `json:"checks"`
			Backups []struct {
				Name   string `json:"name"`
				Walden bool   `json:"walden"`
			} `json:"backups"`
			WAL struct {
				Segments  int `json:"segments"`
				Timelines []struct {
					Timeline, First, Last string
				} `json:"timelines"`
			} `json:"wal"`
		}
		dec := json.NewDecoder(strings.NewReader(r.stdout))
		if err := dec.Decode(&rep); err != nil {
			t.Fatalf("%v:\n%s", err, r.stdout)
		}
		if _, err := dec.Token(); err != io.EOF {
			t.Fatalf("more than one JSON value on stdout:\n%s", r.stdout)
		}
		if !rep.OK || len(rep.Checks) < 8 || len(rep.Backups) != 2 || rep.WAL.Segments != 2 {
			t.Fatalf("report: %+v", rep)
		}
		if rep.Backups[0].Name != waldenBackup || !rep.Backups[0].Walden || rep.Backups[1].Walden {
			t.Errorf("backups: %+v", rep.Backups)
		}
	})

	t.Run("UsableGPGKeyEncryptsAndDecryptsTheProbe", func(t *testing.T) {
		fpr, sec := nativeKey(t, pg.MkDir(t, "keys"))
		env := filepath.Join(pg.Base, "env-gpg")
		writeEnvdir(t, env, merged(base, map[string]string{"WALE_GPG_KEY_ID": fpr, "WALDEN_GPG_SECRET_KEY_PATH": sec}))
		r := runCheck(t, bin, env)
		want := "ok   gpg: encrypted and decrypted a probe with key " + fpr
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Fatalf("exit %d, want %q; stdout:\n%s\nstderr:\n%s", r.code, want, r.stdout, r.stderr)
		}
	})

	t.Run("UnreachableStoreFailsWithoutPrintingTheSecret", func(t *testing.T) {
		const secret = "checkSecretAccessKey0123456789"
		env := filepath.Join(pg.Base, "env-s3")
		writeEnvdir(t, env, merged(pgVars, map[string]string{
			"WALE_S3_PREFIX":        "s3://walden-check/prod/db1",
			"WALE_S3_ENDPOINT":      "http+path://127.0.0.1:1",
			"AWS_ACCESS_KEY_ID":     "AKIDWALDENCHECK",
			"AWS_SECRET_ACCESS_KEY": secret,
			"AWS_REGION":            "us-east-1",
			"WALE_RETRIES":          "1",
			"WALE_LOG_DESTINATION":  "stderr",
		}))
		start := time.Now()
		r := runCheck(t, bin, env)
		wantOneProblem(t, r, "store: cannot write to s3://walden-check/prod/db1: ")
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Fatalf("the secret key was printed:\n%s%s", r.stdout, r.stderr)
		}
		if !strings.Contains(r.stdout, "skip backups: not listed") {
			t.Errorf("listing not skipped:\n%s", r.stdout)
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("took %v with WALE_RETRIES=1", d)
		}
	})

	t.Run("UnwritablePrefixFails", func(t *testing.T) {
		ro := filepath.Join(pg.Base, "root-only")
		if err := os.Mkdir(ro, 0o755); err != nil { // root's, so postgres cannot write
			t.Fatal(err)
		}
		if err := os.Mkdir(ro+"/store", 0o755); err != nil { // the store's root exists, but is root's too
			t.Fatal(err)
		}
		env := filepath.Join(pg.Base, "env-ro")
		writeEnvdir(t, env, merged(base, map[string]string{"WALE_FILE_PREFIX": "file://localhost" + ro + "/store"}))
		line := wantOneProblem(t, runCheck(t, bin, env), "store: cannot write to file://localhost"+ro+"/store: ")
		if !strings.Contains(line, "permission denied") {
			t.Errorf("cause not given: %s", line)
		}
	})

	t.Run("KeyNotInTheKeyringFails", func(t *testing.T) {
		home := pg.MkDir(t, "gnupg-empty")
		if err := os.Chmod(home, 0o700); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run() })
		env := filepath.Join(pg.Base, "env-wrongkey")
		writeEnvdir(t, env, merged(base, map[string]string{"WALE_GPG_KEY_ID": "0x0123456789ABCDEF", "GNUPGHOME": home}))
		line := wantOneProblem(t, runCheck(t, bin, env), "gpg: gpg key 0x0123456789ABCDEF cannot be used for encryption: ")
		if !strings.Contains(line, home) {
			t.Errorf("the keyring searched is not named: %s", line)
		}
	})

	setArchiveCommand := func(t *testing.T, cmd string) {
		t.Helper()
		if cmd == "" {
			pg.Psql(t, "ALTER SYSTEM RESET archive_command")
		} else {
			pg.Psql(t, "ALTER SYSTEM SET archive_command = "+pgtest.Quote(cmd))
		}
		pg.Psql(t, "SELECT pg_reload_conf()")
		want := cmd
		if want == "" {
			want = fmt.Sprintf("%s %s %s wal-push %%p", envdirBin, good, bin)
		}
		deadline := time.Now().Add(10 * time.Second)
		for pg.Psql(t, "SHOW archive_command") != want {
			if time.Now().After(deadline) {
				t.Fatalf("archive_command did not become %q", want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitArchiver := func(t *testing.T, cond string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for pg.Psql(t, "SELECT "+cond+" FROM pg_stat_archiver") != "t" {
			if time.Now().After(deadline) {
				t.Fatalf("pg_stat_archiver never had %s: %s", cond, pg.Psql(t, "SELECT * FROM pg_stat_archiver"))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	t.Run("ArchiveCommandNotCallingWaldenFails", func(t *testing.T) {
		setArchiveCommand(t, "cp %p /var/lib/archive/%f")
		wantOneProblem(t, runCheck(t, bin, good), "archive_command: does not call walden or wal-e wal-push: cp %p /var/lib/archive/%f")
		setArchiveCommand(t, "")
	})

	t.Run("FailingArchiverFailsNamingTheSegment", func(t *testing.T) {
		setArchiveCommand(t, bin+" --envdir /nonexistent wal-push %p")
		seg := pg.Psql(t, "SELECT pg_walfile_name(pg_current_wal_lsn())")
		pg.Psql(t, "CREATE TABLE check_marker(); SELECT pg_switch_wal()")
		waitArchiver(t, "failed_count > 0")
		wantOneProblem(t, runCheck(t, bin, good), "archiver: is failing and has archived nothing yet: last failed "+seg+" at ")
		// Repaired, the archiver catches up and the check passes again.
		setArchiveCommand(t, "")
		waitArchiver(t, "last_archived_wal IS NOT NULL AND last_archived_time > last_failed_time")
		if r := runCheck(t, bin, good); r.code != 0 {
			t.Fatalf("after repair: exit %d\n%s", r.code, r.stderr)
		}
	})

	t.Run("ArchiveModeOffFails", func(t *testing.T) {
		pg.Psql(t, "ALTER SYSTEM SET archive_mode = off")
		pg.Restart(t)
		r := runCheck(t, bin, good)
		wantOneProblem(t, r, "archive_mode: is off (want on)")
		// PostgreSQL hides archive_command then; the files still tell.
		if !strings.Contains(r.stdout, "ok   archive_command: calls "+bin+" wal-push\n") {
			t.Errorf("archive_command not judged from the configuration files:\n%s", r.stdout)
		}
	})

	t.Run("UnreachablePostgresFailsUnlessNoPostgres", func(t *testing.T) {
		pg.Stop(t)
		wantOneProblem(t, runCheck(t, bin, good), "postgres: failed to connect to ")
		r := runCheck(t, bin, good, "--no-postgres")
		if r.code != 0 || !strings.Contains(r.stdout, "skip postgres: not checked (--no-postgres)") {
			t.Fatalf("--no-postgres: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})
}

func TestCheckWithoutAPrefixFailsOnTheConfigLine(t *testing.T) {
	clean(t)
	out, errOut, code := walden(t, "check", "--no-postgres")
	if code != 1 || errOut != "walden check: config: no storage prefix is defined (set WALE_S3_PREFIX, WALE_GS_PREFIX or WALE_FILE_PREFIX)\n" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if !strings.Contains(out, "skip store: no storage prefix is configured\n") {
		t.Fatalf("stdout:\n%s", out)
	}
}

func TestCheckTakesNoPositionalArguments(t *testing.T) {
	clean(t)
	filePrefix(t)
	_, errOut, code := walden(t, "check", "extra")
	if code != 2 || !strings.Contains(errOut, "walden check: error: unrecognized arguments: extra") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}
