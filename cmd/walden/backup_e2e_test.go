package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walden-pg/walden/internal/pgtest"
)

// bbArchivingCluster is a running PostgreSQL 15 whose archive_command is
// walden wal-push through envdir, with pgbench tables and a marker table.
func bbArchivingCluster(t *testing.T, bin string, scale int, extra map[string]string) (c *pgtest.Cluster, envdir, store string) {
	t.Helper()
	dir := bbScratch(t)
	store = filepath.Join(dir, "store")
	os.Mkdir(store, 0o755)
	pgtest.Chown(t, store)
	envdir = filepath.Join(dir, "env")
	vars := map[string]string{
		"WALE_FILE_PREFIX":          "file://localhost" + store,
		"WALE_LOG_DESTINATION":      "stderr",
		"WALDEN_COMPRESSION":        "lz4",
		"WALDEN_PARTITION_SIZE":     "16MiB",
		"WALDEN_UPLOAD_CONCURRENCY": "2",
	}
	for k, v := range extra {
		vars[k] = v
	}
	bbEnvdir(t, envdir, vars)
	c = pgtest.New(t, pgtest.Options{Conf: map[string]string{
		"wal_level":       "replica",
		"archive_mode":    "on",
		"archive_command": pgtest.Quote(bin + " --envdir " + envdir + " wal-push %p"),
	}})
	c.Start(t)
	c.Pgbench(t, "-i", "-s", fmt.Sprint(scale), "-q")
	c.Psql(t, "create table marker(id int primary key, note text)")
	return c, envdir, store
}

// bbArchiveAll switches WAL and waits until the archiver has stored it, so
// "the end of the archive" is now.
func bbArchiveAll(t *testing.T, c *pgtest.Cluster) {
	t.Helper()
	seg := c.Psql(t, "select pg_walfile_name(pg_current_wal_lsn())")
	c.Psql(t, "select pg_switch_wal()")
	c.WaitArchived(t, seg, 120*time.Second)
}

type bbState struct{ markers, sum string }

func bbStateOf(t *testing.T, c *pgtest.Cluster) bbState {
	t.Helper()
	return bbState{
		markers: c.Psql(t, "select coalesce(string_agg(note, ',' order by id), '') from marker"),
		sum:     c.Psql(t, "select sum(abalance) from pgbench_accounts"),
	}
}

var bbBackupNameRe = regexp.MustCompile(`Backup (base_[0-9A-F]{24}_[0-9]{8}): `)

// bbPushUnderLoad runs backup-push while pgbench writes, and returns the
// backup's name.
func bbPushUnderLoad(t *testing.T, c *pgtest.Cluster, bin, envdir string) string {
	t.Helper()
	load := pgtest.Command(t, c.Env(), c.Base, filepath.Join(c.BinDir, "pgbench"), "-n", "-c", "2", "-T", "5")
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	r := bbWalden(t, bin, envdir, c.Env(), "backup-push", c.Dir)
	if err := load.Wait(); err != nil {
		t.Fatalf("pgbench: %v", err)
	}
	bbMust(t, r, "backup-push")
	m := bbBackupNameRe.FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("no backup name in:\n%s", bbTail(r.stderr, 2000))
	}
	for _, want := range []string{"MSG: start upload postgres version metadata", "MSG: beginning volume compression",
		"MSG: begin uploading a base backup volume", "MSG: finish uploading a base backup volume", `The subcommand is "backup-push".`} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("backup-push log lacks %q", want)
		}
	}
	return m[1]
}

// bbFetchAndReplay restores name with backup-fetch and replays the archive
// to its end through restore_command, as an operator following the WAL-E
// runbook would.
func bbFetchAndReplay(t *testing.T, bin, envdir, name string) *pgtest.Cluster {
	t.Helper()
	r := pgtest.New(t, pgtest.Options{NoInit: true, Conf: map[string]string{
		"archive_mode":             "off",
		"restore_command":          pgtest.Quote(bbRestoreCommand(bin, envdir, 8)),
		"recovery_target_timeline": pgtest.Quote("latest"),
	}})
	bbMust(t, bbWalden(t, bin, envdir, nil, "backup-fetch", r.Dir, name), "backup-fetch "+name)
	bbWriteFile(t, filepath.Join(r.Dir, "recovery.signal"), "")
	r.Start(t)
	r.WaitRecoveryDone(t, 120*time.Second)
	return r
}

// bbRestoreToTime runs walden restore --target-time --start and returns the
// started cluster and walden's log.
func bbRestoreToTime(t *testing.T, bin, envdir, when string) (*pgtest.Cluster, string) {
	t.Helper()
	r := bbRestoreTarget(t)
	res := bbMust(t, bbWalden(t, bin, envdir, nil, "restore", r.Dir, "--target-time", when, "--start"), "restore --target-time")
	return r, res.stderr
}

// TestBackupUnderLoadRestoresForEveryCodecAndEncrypted takes one backup per
// codec (and one encrypted) of a cluster under pgbench load, then restores
// each both ways, with backup-fetch plus restore_command to the end of the
// archive and with walden restore to a time between two markers, and
// checks the data. delete retain then removes the older backups and their
// WAL, and the kept ones still restore.
func TestBackupUnderLoadRestoresForEveryCodecAndEncrypted(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	c, envdir, store := bbArchivingCluster(t, bin, 5, nil)
	pub, sec, email := bbGPGKey(t, filepath.Dir(envdir), "main")

	type backup struct {
		label, name, when string
		at                bbState
	}
	var backups []backup
	for i, step := range []struct {
		codec string
		gpg   bool
	}{{"lz4", false}, {"zstd", false}, {"lzo", false}, {"lz4", true}} {
		label := step.codec
		vars := map[string]string{"WALDEN_COMPRESSION": step.codec}
		if step.gpg {
			label += "+gpg"
			vars["WALE_GPG_KEY_ID"] = email
			vars["WALDEN_GPG_PUBLIC_KEY_PATH"] = pub
			vars["WALDEN_GPG_SECRET_KEY_PATH"] = sec
			// The archive now mixes the plaintext WAL of the steps before
			// with encrypted WAL: restores must accept both.
			vars["WALDEN_ALLOW_PLAINTEXT"] = "true"
		}
		bbEnvdir(t, envdir, vars)
		name := bbPushUnderLoad(t, c, bin, envdir)
		c.Psql(t, fmt.Sprintf("insert into marker values (%d, '%s-after-backup')", i*10+1, label))
		at := bbStateOf(t, c)
		time.Sleep(1100 * time.Millisecond)
		when := c.Psql(t, "select now()::text")
		time.Sleep(1100 * time.Millisecond)
		c.Pgbench(t, "-n", "-c", "1", "-t", "200")
		c.Psql(t, fmt.Sprintf("insert into marker values (%d, '%s-later')", i*10+2, label))
		backups = append(backups, backup{label, name, when, at})
	}
	bbArchiveAll(t, c)
	final := bbStateOf(t, c)

	// The encrypted backup's partitions are OpenPGP messages, and the
	// sentinel names the key.
	last := backups[3].name
	parts, _ := filepath.Glob(filepath.Join(store, "basebackups_005", last, "tar_partitions", "part_*.tar.lz4"))
	if len(parts) < 2 {
		t.Fatalf("encrypted backup has partitions %v", parts)
	}
	head, _ := os.ReadFile(parts[0])
	if len(head) == 0 || head[0]&0x80 == 0 {
		t.Errorf("partition %s is not an OpenPGP message", parts[0])
	}
	sentinel, _ := os.ReadFile(filepath.Join(store, "basebackups_005", last+"_backup_stop_sentinel.json"))
	if !strings.Contains(string(sentinel), `"encryption_key_fingerprint": "`) && !strings.Contains(string(sentinel), `"encryption_key_fingerprint":"`) {
		t.Errorf("sentinel lacks the key fingerprint:\n%s", sentinel)
	}

	check := func(t *testing.T, r *pgtest.Cluster, want bbState) {
		t.Helper()
		if got := bbStateOf(t, r); got != want {
			t.Errorf("restored state %+v, want %+v", got, want)
		}
	}
	restoreBoth := func(b backup, fetchName string) {
		t.Run(b.label+"/backup-fetch "+fetchName, func(t *testing.T) {
			check(t, bbFetchAndReplay(t, bin, envdir, fetchName), final)
		})
		t.Run(b.label+"/restore --target-time", func(t *testing.T) {
			r, log := bbRestoreToTime(t, bin, envdir, b.when)
			if !strings.Contains(log, "Starting from "+b.name+".") {
				t.Errorf("restore did not pick %s:\n%s", b.name, bbTail(log, 2000))
			}
			check(t, r, b.at)
		})
	}
	restoreBoth(backups[0], backups[0].name)
	restoreBoth(backups[1], backups[1].name)

	t.Run("delete retain 2 keeps what the oldest kept backup needs", func(t *testing.T) {
		before := bbStoreKeys(t, store)
		dry := bbMust(t, bbWalden(t, bin, envdir, nil, "delete", "retain", "2"), "delete dry run")
		if !strings.Contains(dry.stderr, "MSG: performing dry run of data deletion") || !slices.Equal(before, bbStoreKeys(t, store)) {
			t.Fatal("the dry run is not the default")
		}
		r := bbMust(t, bbWalden(t, bin, envdir, nil, "delete", "--confirm", "retain", "2"), "delete --confirm retain 2")
		if !strings.Contains(r.stderr, "MSG: Deleting 2 oldest base backups.") {
			t.Errorf("no summary line:\n%s", bbTail(r.stderr, 2000))
		}
		keys := bbStoreKeys(t, store)
		horizon := backups[2].name[5:29]
		for _, k := range keys {
			if strings.HasPrefix(k, "basebackups_005/") && !strings.Contains(k, backups[2].name) && !strings.Contains(k, backups[3].name) {
				t.Errorf("%s survived", k)
			}
			if seg, ok := strings.CutPrefix(k, "wal_005/"); ok && len(seg) >= 24 && !strings.Contains(seg, "history") && seg[8:24] < horizon[8:24] {
				t.Errorf("WAL %s older than the oldest kept backup survived", k)
			}
		}
		for _, b := range backups[2:] {
			if !slices.Contains(keys, "basebackups_005/"+b.name+"_backup_stop_sentinel.json") {
				t.Errorf("kept backup %s lost its sentinel", b.name)
			}
		}
		if !slices.ContainsFunc(keys, func(k string) bool { return strings.HasPrefix(k, "wal_005/"+horizon) }) {
			t.Errorf("the start segment %s of the oldest kept backup was deleted", horizon)
		}
		list := bbMust(t, bbWalden(t, bin, envdir, nil, "backup-list"), "backup-list")
		if n := strings.Count(list.stdout, "\r\n"); n != 3 {
			t.Errorf("backup-list has %d lines after retain 2:\n%s", n, list.stdout)
		}
	})
	restoreBoth(backups[2], backups[2].name)
	restoreBoth(backups[3], "LATEST")
}

// bbStoreKeys lists the file store's objects.
func bbStoreKeys(t *testing.T, store string) []string {
	t.Helper()
	var out []string
	filepath.Walk(store, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			rel, _ := filepath.Rel(store, p)
			out = append(out, rel)
		}
		return nil
	})
	slices.Sort(out)
	return out
}

// TestBackupOfAStandbyRestores takes the backup on a streaming standby
// (where pg_walfile_name_offset is not allowed and exclusive backups never
// worked) and restores it to a point after it, from the primary's archive.
func TestBackupOfAStandbyRestores(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	p, envdir, _ := bbArchivingCluster(t, bin, 2, nil)
	s := pgtest.New(t, pgtest.Options{NoInit: true})
	if _, err := pgtest.RunAs(t, p.Env(), "", filepath.Join(p.BinDir, "pg_basebackup"),
		"-D", s.Dir, "-R", "-X", "stream", "--checkpoint=fast"); err != nil {
		t.Fatal(err)
	}
	s.Start(t)
	if got := s.Psql(t, "select pg_is_in_recovery()"); got != "t" {
		t.Fatalf("not a standby: %s", got)
	}
	p.Pgbench(t, "-n", "-c", "1", "-t", "200")
	// A standby does not archive: its backup is complete once the primary
	// archived the stop segment, so the primary keeps switching WAL.
	p.Psql(t, "create table tick(x int)")
	var out bbLockedBuffer
	push := pgtest.Command(t, s.Env(), "", bin, "--envdir", envdir, "backup-push", s.Dir)
	push.Stderr = &out
	if err := push.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- push.Wait() }()
	var perr error
	for waiting := true; waiting; {
		select {
		case perr = <-done:
			waiting = false
		case <-time.After(time.Second):
			p.Psql(t, "insert into tick values (1)")
			p.Psql(t, "select pg_switch_wal()")
		}
	}
	r := bbResult{stderr: out.String()}
	if perr != nil {
		t.Fatalf("backup-push on the standby: %v\n%s", perr, bbTail(r.stderr, 3000))
	}
	m := bbBackupNameRe.FindStringSubmatch(r.stderr)
	if m == nil || !strings.HasPrefix(m[1], "base_00000001") {
		t.Fatalf("backup name: %v\n%s", m, bbTail(r.stderr, 2000))
	}
	p.Psql(t, "insert into marker values (1, 'after-standby-backup')")
	bbArchiveAll(t, p)
	want := bbStateOf(t, p)
	target := bbRestoreTarget(t)
	bbMust(t, bbWalden(t, bin, envdir, nil, "restore", target.Dir, "--backup", m[1], "--start"), "restore of the standby backup")
	if got := bbStateOf(t, target); got != want {
		t.Fatalf("restored %+v, want %+v", got, want)
	}
}
