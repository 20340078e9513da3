package fastpath

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/walden-pg/walden/config"
)

// fingerprintOmits are the settings the fingerprint leaves out: the
// agent's own (schedules, retention, listen addresses, PGDATA, log file,
// base backup tuning), per-run concurrency, and what every request
// carries itself (--terse, the log shape).
var fingerprintOmits = map[string]bool{
	"Terse": true, "BackupSchedule": true, "Retain.Count": true, "Retain.Age": true,
	"MetricsListen": true, "PGData": true, "SocketPath": true, "LogFile": true,
	"PartitionSize": true, "DiskRateLimit": true, "UploadConcurrency": true, "DownloadConcurrency": true,
	"LogDestinations": true, "SyslogFacility": true, "LogFormat": true,
}

// TestFingerprintCoversEverySettingButTheAgentsOwn sets each field of
// config.Settings in turn, found by reflection, so that a setting added
// later changes the fingerprint unless it is listed as the agent's own.
func TestFingerprintCoversEverySettingButTheAgentsOwn(t *testing.T) {
	s := &config.Settings{}
	base := appendSettings(nil, s)
	seen := 0
	var fields func(path string, v reflect.Value)
	fields = func(path string, v reflect.Value) {
		for i := 0; i < v.NumField(); i++ {
			f, name := v.Field(i), path+v.Type().Field(i).Name
			if f.Kind() == reflect.Struct {
				fields(name+".", f)
				continue
			}
			old := reflect.New(f.Type()).Elem()
			old.Set(f)
			switch f.Kind() {
			case reflect.String:
				f.SetString("x")
			case reflect.Bool:
				f.SetBool(true)
			case reflect.Int, reflect.Int64:
				f.SetInt(7)
			case reflect.Slice:
				f.Set(reflect.ValueOf([]string{"x"}))
			default:
				t.Fatalf("Settings.%s: a %s field the test cannot set", name, f.Kind())
			}
			changed := !bytes.Equal(appendSettings(nil, s), base)
			f.Set(old)
			seen++
			if changed == fingerprintOmits[name] {
				if changed {
					t.Errorf("Settings.%s is the agent's own but changes the fingerprint", name)
				} else {
					t.Errorf("Settings.%s does not change the fingerprint: encode it in appendSettings or list it in fingerprintOmits", name)
				}
			}
		}
	}
	fields("", reflect.ValueOf(s).Elem())
	if seen < 40 {
		t.Fatalf("walked only %d fields", seen)
	}
}

// TestFingerprintLeavesTheLogShape: the request carries the client's
// logging, so a different log shape alone does not refuse it.
func TestFingerprintLeavesTheLogShape(t *testing.T) {
	a := &config.Settings{LogDestinations: []string{"stderr"}}
	b := &config.Settings{LogDestinations: []string{"stderr", "syslog"}, SyslogFacility: "local0"}
	if Fingerprint(a) != Fingerprint(b) {
		t.Error("settings differing only in logging fingerprint differently")
	}
}

func TestFingerprintIgnoresAgentOnlySettings(t *testing.T) {
	base := &config.Settings{Compression: "lz4", LogFormat: "wal-e"}
	a, b := *base, *base
	b.BackupSchedule, b.MetricsListen, b.SocketPath, b.Terse, b.UploadConcurrency = "* * * * *", "127.0.0.1:1", "/x", true, 99
	if Fingerprint(&a) != Fingerprint(&b) {
		t.Fatal("agent-only settings changed the fingerprint")
	}
	c := *base
	c.Compression = "zstd"
	if Fingerprint(&a) == Fingerprint(&c) {
		t.Fatal("compression did not change the fingerprint")
	}
	d := *base
	d.GPG.KeyID = "ABCD1234"
	if Fingerprint(&a) == Fingerprint(&d) {
		t.Fatal("the GPG key did not change the fingerprint")
	}
	t.Setenv("AWS_PROFILE", "other")
	before := Fingerprint(&a)
	t.Setenv("AWS_PROFILE", "third")
	if Fingerprint(&a) == before {
		t.Fatal("AWS_PROFILE did not change the fingerprint")
	}
}
