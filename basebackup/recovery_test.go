package basebackup

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRecoverySettingsOn12AndLaterGoToAutoConfWithSignal(t *testing.T) {
	d := t.TempDir()
	os.WriteFile(filepath.Join(d, "PG_VERSION"), []byte("15\n"), 0o600)
	os.WriteFile(filepath.Join(d, "postgresql.auto.conf"), []byte("work_mem = '4MB'\n"), 0o600)
	os.WriteFile(filepath.Join(d, "standby.signal"), nil, 0o600)
	cmd := `/usr/bin/walden --envdir '/etc/wal e.d' wal-fetch -p 8 "%f" "%p"`
	files, err := WriteRecovery(d, RecoverySettings(cmd, Target{Time: "2026-11-24 05:48:16.946168+00"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Fatalf("files %v", files)
	}
	auto, _ := os.ReadFile(filepath.Join(d, "postgresql.auto.conf"))
	for _, want := range []string{
		"work_mem = '4MB'\n",
		`restore_command = '/usr/bin/walden --envdir ''/etc/wal e.d'' wal-fetch -p 8 "%f" "%p"'`,
		"recovery_target_time = '2026-11-24 05:48:16.946168+00'",
		"recovery_target_timeline = 'latest'",
		"recovery_target_action = 'promote'",
	} {
		if !strings.Contains(string(auto), want) {
			t.Errorf("postgresql.auto.conf lacks %s:\n%s", want, auto)
		}
	}
	if _, err := os.Stat(filepath.Join(d, "recovery.signal")); err != nil {
		t.Error("no recovery.signal")
	}
	if _, err := os.Stat(filepath.Join(d, "standby.signal")); err == nil {
		t.Error("standby.signal left: the server would never promote")
	}
}

func TestRecoverySettingsBefore12GoToRecoveryConf(t *testing.T) {
	d := t.TempDir()
	os.WriteFile(filepath.Join(d, "PG_VERSION"), []byte("9.6\n"), 0o600)
	if _, err := WriteRecovery(d, RecoverySettings("walden wal-fetch", Target{XID: "3238", Timeline: "current"})); err != nil {
		t.Fatal(err)
	}
	rc, err := os.ReadFile(filepath.Join(d, "recovery.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"restore_command = 'walden wal-fetch'", "recovery_target_xid = '3238'", "recovery_target_timeline = 'current'"} {
		if !strings.Contains(string(rc), want) {
			t.Errorf("recovery.conf lacks %s:\n%s", want, rc)
		}
	}
	if _, err := os.Stat(filepath.Join(d, "recovery.signal")); err == nil {
		t.Error("recovery.signal written for 9.6")
	}
}

func TestEachTargetKindBecomesItsSetting(t *testing.T) {
	cases := map[string]Target{
		"recovery_target_name = 'after_m3'":               {Name: "after_m3"},
		"recovery_target_lsn = '0/53C2DB8'":               {LSN: "0/53C2DB8"},
		"recovery_target = 'immediate'":                   {Immediate: true},
		"recovery_target_timeline = '2'":                  {Timeline: "2"},
		"recovery_target_time = '2026-11-24 05:48:16+00'": {Time: "2026-11-24T05:48:16Z"},
	}
	for want, tg := range cases {
		var b strings.Builder
		for _, kv := range RecoverySettings("x", tg) {
			b.WriteString(kv[0] + " = " + ConfQuote(kv[1]) + "\n")
		}
		if !strings.Contains(b.String(), want) {
			t.Errorf("%+v: want %s in\n%s", tg, want, b.String())
		}
	}
}

func TestTargetTimesWithoutZoneAreUTC(t *testing.T) {
	want := time.Date(2026, 11, 24, 5, 48, 16, 946168000, time.UTC)
	for _, s := range []string{"2026-11-24 05:48:16.946168+00", "2026-11-24 05:48:16.946168", "2026-11-24T05:48:16.946168Z",
		"2026-11-24 06:48:16.946168+01:00", "2026-11-24 05:48:16.946168 UTC"} {
		got, err := ParseTargetTime(s)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseTargetTime(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseTargetTime("yesterday"); err == nil {
		t.Error("garbage accepted")
	}
}

func TestShellAndConfQuoting(t *testing.T) {
	if got := ShellQuote("/usr/bin/walden"); got != "/usr/bin/walden" {
		t.Errorf("plain path quoted: %s", got)
	}
	if got := ShellQuote("it's here"); got != `'it'\''s here'` {
		t.Errorf("ShellQuote = %s", got)
	}
	if got := ConfQuote(`a'b\c`); got != `'a''b\\c'` {
		t.Errorf("ConfQuote = %s", got)
	}
}

func TestChooseBackupPicksNewestFinishedBeforeTheTarget(t *testing.T) {
	st, _, dir := testStore(t)
	ctx := context.Background()
	for i, n := range []string{nameA, nameB, nameC} { // sentinels at 00:00:00, :01, :02
		putKeys(t, st, dir, PartitionKey(n, 0, ".lz4"))
		body := `{"wal_segment_backup_stop": "000000010000000000000003", "wal_segment_offset_backup_stop": "00000100", "expanded_size_bytes": 1, "spec": null}`
		if err := st.Put(ctx, SentinelKey(n), strings.NewReader(body), int64(len(body)), putOpts()); err != nil {
			t.Fatal(err)
		}
		mt := time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC)
		os.Chtimes(filepath.Join(dir, SentinelKey(n)), mt, mt)
	}
	b, err := ChooseBackup(ctx, st, "", Target{Time: "2026-01-01 00:00:01.5+00"})
	if err != nil || b.Name != nameB {
		t.Fatalf("chose %s, %v", b.Name, err)
	}
	if _, err := ChooseBackup(ctx, st, "", Target{Time: "2025-12-31 23:00:00+00"}); err == nil || !strings.Contains(err.Error(), "no backup can reach") {
		t.Fatalf("target before every backup: %v", err)
	}
	if b, _ := ChooseBackup(ctx, st, "", Target{Name: "x"}); b.Name != nameC {
		t.Fatalf("non-time target chose %s, want LATEST", b.Name)
	}
	if b, _ := ChooseBackup(ctx, st, nameA, Target{}); b.Name != nameA {
		t.Fatalf("named backup: %s", b.Name)
	}
}

func TestMissingConfigurationIsWrittenMinimal(t *testing.T) {
	d := t.TempDir()
	if err := WriteMissingConfig(d, []string{"postgresql.conf", "pg_hba.conf", "pg_ident.conf"}); err != nil {
		t.Fatal(err)
	}
	hba, _ := os.ReadFile(filepath.Join(d, "pg_hba.conf"))
	if !strings.Contains(string(hba), "local   all       postgres  peer") {
		t.Fatalf("pg_hba.conf:\n%s", hba)
	}
}
