package check

import (
	"strings"
	"testing"
	"time"
)

func TestFindWalPushAcceptsWaldenAndWalELinkCommandLines(t *testing.T) {
	for _, tc := range []struct {
		cmd, program string
	}{
		{"walden wal-push %p", "walden"},
		{"/usr/bin/walden --envdir /etc/wal-e.d/env wal-push %p", "/usr/bin/walden"},
		{"/usr/bin/envdir /etc/wal-e.d/env /opt/wal-e/bin/wal-e wal-push %p", "/opt/wal-e/bin/wal-e"},
		{"envdir /etc/wal-e.d/env /opt/wal-e/bin/wal-e --terse --aws-instance-profile wal-push %p", "/opt/wal-e/bin/wal-e"},
		{`'/usr/bin/walden' wal-push "%p"`, "/usr/bin/walden"},
		{"test ! -f /x/%f && envdir /e walden wal-push %p", "walden"},
		{"WALE_S3_PREFIX=s3://b/p wal-e wal-push -p 4 %p", "wal-e"},
	} {
		call, ok := FindWalPush(tc.cmd)
		if !ok || call.Program != tc.program || !call.HasPath {
			t.Errorf("FindWalPush(%q) = %+v, %v; want program %q with %%p", tc.cmd, call, ok, tc.program)
		}
	}
}

func TestFindWalPushRejectsCommandsThatDoNotPushThroughWaldenOrWalE(t *testing.T) {
	for _, cmd := range []string{
		"",
		"cp %p /mnt/archive/%f",
		"/bin/true",
		"envdir /etc/wal-e.d/env cp %p /mnt/archive/%f", // envdir of WAL-E, but no wal-push
		"/opt/wal-e/bin/wal-e wal-fetch %f %p",
		"pgbackrest --stanza=main archive-push %p",
		"walden version; wal-push %p", // wal-push is not walden's argument here
		"--wal-e wal-push %p",
	} {
		if call, ok := FindWalPush(cmd); ok {
			t.Errorf("FindWalPush(%q) = %+v, want not found", cmd, call)
		}
	}
}

func TestArchiveCommandWithoutPercentPFailsNamingIt(t *testing.T) {
	r := evalArchiveCommand("walden wal-push")
	if r.OK || !strings.Contains(r.Detail, "without %p") {
		t.Fatalf("got %+v", r)
	}
}

func TestArchiveCommandProblemShowsTheCommandWithInlineValuesHidden(t *testing.T) {
	r := evalArchiveCommand("AWS_SECRET_ACCESS_KEY=hunter2hunter2 cp %p /x/%f --opt=keep")
	if r.OK {
		t.Fatal("a cp archive_command passed")
	}
	if strings.Contains(r.Detail, "hunter2") {
		t.Fatalf("secret printed: %s", r.Detail)
	}
	want := "does not call walden or wal-e wal-push: AWS_SECRET_ACCESS_KEY=*** cp %p /x/%f --opt=keep"
	if r.Detail != want {
		t.Fatalf("detail %q, want %q", r.Detail, want)
	}
}

func TestEmptyArchiveCommandFails(t *testing.T) {
	if r := evalArchiveCommand(" "); r.OK || !strings.Contains(r.Detail, "is empty") {
		t.Errorf("%+v", r)
	}
}

func TestArchiveCommandHiddenByArchiveModeOffIsSkippedNotFailed(t *testing.T) {
	if r := evalArchiveCommand("(disabled)"); !r.OK || !r.Skipped {
		t.Errorf("%+v", r)
	}
}

func goodFacts() *PGFacts {
	now := time.Date(2026, 11, 24, 5, 0, 0, 0, time.UTC)
	return &PGFacts{
		Version: "15.18", User: "postgres", Database: "postgres",
		Settings: map[string]Setting{
			"archive_mode":    {Value: "on"},
			"archive_command": {Value: "envdir /etc/wal-e.d/env walden wal-push %p"},
			"archive_library": {Value: ""},
			"wal_level":       {Value: "replica"},
		},
		Archiver: &ArchiverStats{ArchivedCount: 3, LastArchivedWAL: "000000010000000000000003", LastArchivedTime: &now},
	}
}

func resultsByName(rs []Result) map[string]Result {
	m := map[string]Result{}
	for _, r := range rs {
		m[r.Name] = r
	}
	return m
}

func TestGoodPostgresSettingsPassEveryCheck(t *testing.T) {
	for _, r := range EvalPostgres(goodFacts()) {
		if !r.OK {
			t.Errorf("%s failed: %s", r.Name, r.Detail)
		}
	}
}

func TestEachBadPostgresSettingFailsUnderItsOwnName(t *testing.T) {
	for _, tc := range []struct {
		name, value, check, want string
		pending                  bool
	}{
		{"archive_mode", "off", "archive_mode", "is off (want on)", false},
		{"archive_mode", "off", "archive_mode", "is off (want on); a new value waits for a restart", true},
		{"wal_level", "minimal", "wal_level", "is minimal (want replica or logical)", false},
		{"archive_command", "cp %p /x/%f", "archive_command", "does not call walden or wal-e wal-push: cp %p /x/%f", false},
		{"archive_library", "basic_archive", "archive_library", `is "basic_archive", so PostgreSQL ignores archive_command (set it to '')`, false},
	} {
		f := goodFacts()
		f.Settings[tc.name] = Setting{Value: tc.value, PendingRestart: tc.pending}
		got := resultsByName(EvalPostgres(f))
		r, ok := got[tc.check]
		if !ok || r.OK || r.Detail != tc.want {
			t.Errorf("%s=%q: got %+v, want failure %q", tc.name, tc.value, r, tc.want)
		}
		for name, other := range got {
			if name != tc.check && !other.OK {
				t.Errorf("%s=%q also failed %s: %s", tc.name, tc.value, name, other.Detail)
			}
		}
	}
}

func TestAlwaysArchiveModeAndLogicalWalLevelPass(t *testing.T) {
	f := goodFacts()
	f.Settings["archive_mode"] = Setting{Value: "always"}
	f.Settings["wal_level"] = Setting{Value: "logical"}
	for _, r := range EvalPostgres(f) {
		if !r.OK {
			t.Errorf("%s failed: %s", r.Name, r.Detail)
		}
	}
}

func TestSettingsTheRoleCannotReadAreProblemsNamingTheRole(t *testing.T) {
	f := goodFacts()
	f.User = "monitor"
	delete(f.Settings, "archive_command")
	f.Archiver = nil
	got := resultsByName(EvalPostgres(f))
	if r := got["archive_command"]; r.OK || !strings.Contains(r.Detail, "as role monitor") {
		t.Errorf("archive_command: %+v", r)
	}
	if r := got["archiver"]; r.OK || !strings.Contains(r.Detail, "as role monitor") {
		t.Errorf("archiver: %+v", r)
	}
}

func TestArchiverIsFailingOnlyWhenTheLastFailureIsNewerThanTheLastSuccess(t *testing.T) {
	at := func(m int) *time.Time { v := time.Date(2026, 11, 24, 5, m, 0, 0, time.UTC); return &v }
	for _, tc := range []struct {
		name string
		a    ArchiverStats
		ok   bool
		want string
	}{
		{"idle", ArchiverStats{}, true, "nothing archived yet; no failures"},
		{"healthy", ArchiverStats{ArchivedCount: 5, LastArchivedWAL: "000000010000000000000005", LastArchivedTime: at(10)}, true,
			"last archived 000000010000000000000005 at 2026-11-24T05:10:00Z; no failures"},
		{"recovered", ArchiverStats{LastArchivedWAL: "000000010000000000000005", LastArchivedTime: at(10),
			FailedCount: 2, LastFailedWAL: "000000010000000000000004", LastFailedTime: at(8)}, true,
			"last archived 000000010000000000000005 at 2026-11-24T05:10:00Z; 2 failures earlier, the last at 2026-11-24T05:08:00Z"},
		{"failing", ArchiverStats{LastArchivedWAL: "000000010000000000000005", LastArchivedTime: at(10),
			FailedCount: 7, LastFailedWAL: "000000010000000000000006", LastFailedTime: at(12)}, false,
			"is failing since 2026-11-24T05:10:00Z: last failed 000000010000000000000006 at 2026-11-24T05:12:00Z (7 failures)"},
		{"never archived", ArchiverStats{FailedCount: 1, LastFailedWAL: "000000010000000000000001", LastFailedTime: at(1)}, false,
			"is failing and has archived nothing yet: last failed 000000010000000000000001 at 2026-11-24T05:01:00Z (1 failure)"},
	} {
		r := EvalArchiver(tc.a)
		if r.OK != tc.ok || r.Detail != tc.want || r.Name != "archiver" {
			t.Errorf("%s: got %+v, want ok=%v %q", tc.name, r, tc.ok, tc.want)
		}
	}
}

func TestRedactAssignmentsKeepsOptionsAndPaths(t *testing.T) {
	got := RedactAssignments(`PGPASSWORD='a b' X="y z" walden --envdir=/etc/wal-e.d/env wal-push %p`)
	want := `PGPASSWORD=*** X=*** walden --envdir=/etc/wal-e.d/env wal-push %p`
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
