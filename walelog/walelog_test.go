package walelog

import (
	"bytes"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func fixed() time.Time { return time.Date(2026, 11, 24, 5, 43, 9, 590582000, time.UTC) }

func TestFormatMatchesWALEPushLinesByteForByte(t *testing.T) {
	var buf bytes.Buffer
	l := New(Options{Stderr: &buf, Destinations: []string{"stderr"}, Now: fixed, Pid: 18929})
	key := "file://localhost/tmp/t1/store/wal_005/000000010000000000000001.lzo"
	l.Info(Upload, "begin archiving a file",
		`Uploading "pg_wal/000000010000000000000001" to "`+key+`".`, "",
		F("action", "push-wal"), F("state", "begin"), F("seg", "000000010000000000000001"), F("prefix", "tmp/t1/store/"), F("key", key))
	want := "wal_e.worker.upload INFO     MSG: begin archiving a file\n" +
		`        DETAIL: Uploading "pg_wal/000000010000000000000001" to "file://localhost/tmp/t1/store/wal_005/000000010000000000000001.lzo".` + "\n" +
		"        STRUCTURED: time=2026-11-24T05:43:09.590582-00 pid=18929 action=push-wal key=file://localhost/tmp/t1/store/wal_005/000000010000000000000001.lzo prefix=tmp/t1/store/ seg=000000010000000000000001 state=begin\n"
	if buf.String() != want {
		t.Fatalf("got\n%q\nwant\n%q", buf.String(), want)
	}
}

func TestFormatPadsShortLoggerAndIndentsHintAndTrailingNewline(t *testing.T) {
	var buf bytes.Buffer
	l := New(Options{Stderr: &buf, Destinations: []string{"stderr"}, Now: fixed, Pid: 1})
	l.Log(Record{Logger: Main, Level: Critical, Msg: "m", Detail: "line1\nline2\n", Hint: "h"})
	want := "wal_e.main   CRITICAL MSG: m\n        DETAIL: line1\n        line2\n        \n        HINT: h\n        STRUCTURED: time=2026-11-24T05:43:09.590582-00 pid=1\n"
	if buf.String() != want {
		t.Fatalf("got\n%q\nwant\n%q", buf.String(), want)
	}
}

func TestTerseDropsInfo(t *testing.T) {
	var buf bytes.Buffer
	l := New(Options{Stderr: &buf, Destinations: []string{"stderr"}, Terse: true})
	l.Info(Main, "quiet", "", "")
	l.Warn(Main, "loud", "", "")
	if strings.Contains(buf.String(), "quiet") || !strings.Contains(buf.String(), "WARNING  MSG: loud") {
		t.Fatalf("got %q", buf.String())
	}
}

func TestEmptyDestinationPrintsBareWarnings(t *testing.T) {
	var buf bytes.Buffer
	l := New(Options{Stderr: &buf, Destinations: []string{}, Now: fixed, Pid: 7})
	l.Info(Main, "lost", "", "")
	l.Error(Main, "shown", "d", "")
	want := "MSG: shown\nDETAIL: d\nSTRUCTURED: time=2026-11-24T05:43:09.590582-00 pid=7\n"
	if buf.String() != want {
		t.Fatalf("got %q want %q", buf.String(), want)
	}
}

func TestDestinationTokensAreNotTrimmed(t *testing.T) {
	var buf bytes.Buffer
	l := New(Options{Stderr: &buf, Destinations: []string{"stderr", " syslog"}, SyslogPaths: []string{}})
	l.Info(Main, "x", "", "")
	if !strings.Contains(buf.String(), "MSG: x") {
		t.Fatalf("stderr lost: %q", buf.String())
	}
}

func TestSyslogGetsPriorityAndNulTerminatedRecord(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "log")
	pc, err := net.ListenPacket("unixgram", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	l := New(Options{Stderr: &bytes.Buffer{}, Destinations: []string{"syslog"}, Facility: "LOCAL3", SyslogPaths: []string{sock}, Now: fixed, Pid: 24425})
	l.Info(Main, "starting WAL-E", `The subcommand is "backup-list".`, "")
	buf := make([]byte, 4096)
	pc.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	want := "<158>wal_e.main   INFO     MSG: starting WAL-E\n        DETAIL: The subcommand is \"backup-list\".\n        STRUCTURED: time=2026-11-24T05:43:09.590582-00 pid=24425\x00"
	if string(buf[:n]) != want {
		t.Fatalf("got %q want %q", buf[:n], want)
	}
}

func TestMissingSyslogSocketIsSilent(t *testing.T) {
	var buf bytes.Buffer
	l := New(Options{Stderr: &buf, Destinations: []string{"stderr", "syslog"}, SyslogPaths: []string{"/nonexistent/log"}})
	l.Info(Main, "x", "", "")
	if strings.Count(buf.String(), "\n") != 2 || strings.Contains(buf.String(), "Logging error") {
		t.Fatalf("got %q", buf.String())
	}
}

func TestJSONFormatCarriesTheSameFields(t *testing.T) {
	var buf bytes.Buffer
	l := New(Options{Stderr: &buf, Destinations: []string{"stderr"}, Format: "json", Now: fixed, Pid: 3})
	l.Info(Upload, "completed archiving to a file", "d", "", F("action", "push-wal"), F("rate", "12"))
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("%v: %q", err, buf.String())
	}
	for k, v := range map[string]any{"level": "info", "logger": Upload, "message": "completed archiving to a file", "detail": "d", "action": "push-wal", "rate": "12", "time": "2026-11-24T05:43:09.590582-00"} {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
}

func TestFormatRateFollowsPythonG(t *testing.T) {
	cases := []struct {
		bytes int64
		d     time.Duration
		want  string
	}{
		{5610312, time.Second, "5478.82"},
		{12 * 1024, time.Second, "12"},
		{1024 * 1000000, time.Second, "1e+06"},
		{1024 * 100000, time.Second, "100000"},
	}
	for _, c := range cases {
		if got := FormatRate(c.bytes, c.d); got != c.want {
			t.Errorf("FormatRate(%d, %v) = %q, want %q", c.bytes, c.d, got, c.want)
		}
	}
}
