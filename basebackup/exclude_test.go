package basebackup

import (
	"sort"
	"strings"
	"testing"
)

func TestExclusionRules(t *testing.T) {
	cases := []struct {
		rel   string
		isDir bool
		want  verdict
	}{
		// WAL-E's rules
		{"pg_wal", true, dirEntry},
		{"pg_xlog", true, dirEntry},
		{"pg_log", true, dirEntry},
		{"pg_replslot", true, dirEntry},
		{"base/1/pgsql_tmp", true, dirEntry},
		{"pg_stat_tmp", true, dirEntry},
		{"pg_wal/.wal-e", true, dirEntry},
		{"lost+found", true, skip},
		{"base/lost+found", true, skip},
		{"postmaster.pid", false, skip},
		{"postmaster.opts", false, skip},
		{"recovery.conf", false, skip},
		{"recovery.done", false, skip},
		{"promote", false, skip},
		// PostgreSQL's documented exclusions
		{"pg_dynshmem", true, dirEntry},
		{"pg_notify", true, dirEntry},
		{"pg_serial", true, dirEntry},
		{"pg_snapshots", true, dirEntry},
		{"pg_subtrans", true, dirEntry},
		{"base/1/pg_internal.init", false, skip},
		{"global/pg_internal.init", false, skip},
		{"base/5/pgsql_tmp1234.0", false, skip},
		{"base/5/t3_16384", false, skip},
		{"base/5/t3_16384_fsm", false, skip},
		{"backup_label", false, skip},
		{"backup_label.old", false, skip},
		{"tablespace_map", false, skip},
		{"backup_manifest", false, skip},
		{"postgresql.auto.conf.tmp", false, skip},
		{"global/pg_control", false, skip}, // read last, on its own
		// kept
		{"postgresql.conf", false, include},
		{"pg_hba.conf", false, include},
		{"pg_ident.conf", false, include},
		{"postgresql.auto.conf", false, include},
		{"standby.signal", false, include},
		{"recovery.signal", false, include},
		{"current_logfiles", false, include},
		{"log", true, include},
		{"base/5/16384", false, include},
		{"base/5/16384_vm", false, include},
		{"pg_xact", true, include},
		{"base/5/pg_wal", true, include}, // only the top-level one is special
		{"sub/postmaster.pid", false, include},
		{"t3_16384", false, include}, // not in a relation directory
	}
	for _, c := range cases {
		if got := classify(c.rel, c.isDir); got != c.want {
			t.Errorf("classify(%q, dir=%v) = %d, want %d", c.rel, c.isDir, got, c.want)
		}
	}
}

func TestUnloggedRelationsKeepOnlyTheirInitFork(t *testing.T) {
	names := []string{"16384", "16384_init", "16384_fsm", "16384_vm", "16384.1", "16390", "16390_fsm", "PG_VERSION"}
	skips := unloggedSkips(names)
	var got []string
	for n := range skips {
		got = append(got, n)
	}
	sort.Strings(got)
	if strings.Join(got, " ") != "16384 16384.1 16384_fsm 16384_vm" {
		t.Fatalf("skipped %v", got)
	}
	if unloggedSkips([]string{"1", "2_fsm"}) != nil {
		t.Fatal("no unlogged relation, yet something skipped")
	}
}
