package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walden-pg/walden/basebackup"
	"github.com/walden-pg/walden/internal/pgtest"
)

// bbOneError checks a failed run: non-zero exit and an ERROR record that
// says what went wrong, and no traceback-like noise.
func bbOneError(t *testing.T, r bbResult, want string) {
	t.Helper()
	if r.code == 0 {
		t.Fatalf("exit 0, want failure (%s)", want)
	}
	if !strings.Contains(r.stderr, want) {
		t.Fatalf("stderr lacks %q:\n%s", want, bbTail(r.stderr, 3000))
	}
	if n := strings.Count(r.stderr, " ERROR ") + strings.Count(r.stderr, " CRITICAL "); n != 1 {
		t.Errorf("%d error records, want 1:\n%s", n, bbTail(r.stderr, 3000))
	}
}

func bbNoPgControl(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "global", "pg_control")); err == nil {
		t.Error("global/pg_control exists: PostgreSQL could start on a half-restored directory")
	}
}

// TestBadInputGivesOneClearErrorAndNothingStartable covers the failures an
// operator meets: a directory that is no cluster, a running cluster as the
// target, a backup that does not exist, a corrupt partition, and the wrong
// decryption key (on an offline backup, whose name must be its real REDO
// segment).
func TestBadInputGivesOneClearErrorAndNothingStartable(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	dir := bbScratch(t)
	store := filepath.Join(dir, "store")
	os.Mkdir(store, 0o755)
	pgtest.Chown(t, store)
	pubA, secA, emailA := bbGPGKey(t, dir, "alice")
	_, secB, _ := bbGPGKey(t, dir, "bob")
	env := filepath.Join(dir, "env")
	bbEnvdir(t, env, map[string]string{
		"WALE_FILE_PREFIX": "file://localhost" + store, "WALE_LOG_DESTINATION": "stderr",
		"WALE_GPG_KEY_ID": emailA, "WALDEN_GPG_PUBLIC_KEY_PATH": pubA, "WALDEN_GPG_SECRET_KEY_PATH": secA,
	})
	wrongEnv := filepath.Join(dir, "wrong-env")
	bbEnvdir(t, wrongEnv, map[string]string{
		"WALE_FILE_PREFIX": "file://localhost" + store, "WALE_LOG_DESTINATION": "stderr", "WALDEN_GPG_SECRET_KEY_PATH": secB,
	})
	newDir := func(name string) string {
		d := filepath.Join(dir, name)
		os.Mkdir(d, 0o700)
		pgtest.Chown(t, d)
		return d
	}

	t.Run("not a data directory", func(t *testing.T) {
		bbOneError(t, bbWalden(t, bin, env, nil, "backup-push", newDir("empty")), "not a PostgreSQL data directory")
	})

	c := pgtest.New(t, pgtest.Options{})
	c.Start(t)
	c.Psql(t, "create table t as select 'offline' as v")
	c.Stop(t)
	var name string
	t.Run("offline backup is named after its REDO segment", func(t *testing.T) {
		cd, err := basebackup.ControlData(t.Context(), c.BinDir, c.Dir)
		if err != nil {
			t.Fatal(err)
		}
		redo, _ := basebackup.ParseLSN(cd["Latest checkpoint's REDO location"])
		name = basebackup.BackupName(cd["Latest checkpoint's REDO WAL file"], uint64(redo)%basebackup.DefaultSegmentSize)
		r := bbMust(t, bbWalden(t, bin, env, nil, "backup-push", "--while-offline", c.Dir), "backup-push --while-offline")
		if !strings.Contains(r.stderr, "Backup "+name+":") {
			t.Fatalf("want backup %s:\n%s", name, bbTail(r.stderr, 2000))
		}
	})

	t.Run("wrong key", func(t *testing.T) {
		target := newDir("wrongkey")
		r := bbWalden(t, bin, wrongEnv, nil, "backup-fetch", target, "LATEST")
		bbOneError(t, r, "restore of "+name)
		bbNoPgControl(t, target)
		// The right key restores it. (Starting it needs the archived WAL
		// of its checkpoint, as with WAL-E's offline backups.)
		right := newDir("rightkey")
		bbMust(t, bbWalden(t, bin, env, nil, "backup-fetch", right, name), "backup-fetch with the right key")
		for _, f := range []string{"PG_VERSION", "global/pg_control", "postgresql.conf"} {
			want, _ := os.ReadFile(filepath.Join(c.Dir, f))
			if got, err := os.ReadFile(filepath.Join(right, f)); err != nil || string(got) != string(want) {
				t.Errorf("%s differs after restore (%v)", f, err)
			}
		}
	})

	c.Start(t)
	t.Run("running cluster as the target", func(t *testing.T) {
		bbOneError(t, bbWalden(t, bin, env, nil, "backup-fetch", c.Dir, "LATEST"), "attempting to overwrite a live data directory")
		bbOneError(t, bbWalden(t, bin, env, c.Env(), "backup-push", "--while-offline", c.Dir), "while_offline set, but pg looks to be running")
	})

	t.Run("backup that does not exist", func(t *testing.T) {
		target := newDir("missing")
		bbOneError(t, bbWalden(t, bin, env, nil, "backup-fetch", target, "base_000000010000000000000099_00000040"), "no backups found for fetching")
		if ents, _ := os.ReadDir(target); len(ents) != 0 {
			t.Errorf("target not left empty: %v", ents)
		}
	})

	t.Run("corrupt partition", func(t *testing.T) {
		envdir := bbFixtureArchive(t)
		part := filepath.Join(filepath.Dir(envdir), "store", "basebackups_005", "base_000000010000000000000040_00000040", "tar_partitions", "part_00000000.tar.lzo")
		data, err := os.ReadFile(part)
		if err != nil {
			t.Fatal(err)
		}
		for i := len(data) / 2; i < len(data)/2+64; i++ {
			data[i] ^= 0x5a
		}
		os.WriteFile(part, data, 0o644)
		target := newDir("corrupt")
		bbOneError(t, bbWalden(t, bin, envdir, nil, "backup-fetch", target, "LATEST"), "restore of base_000000010000000000000040_00000040")
		bbNoPgControl(t, target)
	})
}
