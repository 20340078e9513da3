package basebackup

import (
	"path"
	"regexp"
	"strings"
)

// verdict is what a base backup does with one entry of the data directory.
type verdict int

const (
	include  verdict = iota
	skip             // no member at all
	dirEntry         // the directory's own member, none of its contents
)

// Top-level directories whose contents are never backed up: WAL-E's list
// (pg_xlog, pg_wal, pg_log, pg_replslot) and PostgreSQL's documented
// base-backup exclusions (the rest). Their contents are either rebuilt at
// start-up or must not travel to another server.
var topContentsExcluded = map[string]bool{
	"pg_wal": true, "pg_xlog": true, "pg_log": true, "pg_replslot": true,
	"pg_dynshmem": true, "pg_notify": true, "pg_serial": true, "pg_snapshots": true,
	"pg_stat_tmp": true, "pg_subtrans": true,
}

// Top-level files that are left out. The server's lock and command line,
// WAL-E's recovery files, and a backup_label/tablespace_map left by someone
// else's backup: ours come from pg_backup_stop and are added at the end.
// global/pg_control is read last, on its own.
var topFilesExcluded = map[string]bool{
	"postmaster.pid": true, "postmaster.opts": true,
	"recovery.conf": true, "recovery.done": true, "promote": true,
	"backup_label": true, "backup_label.old": true,
	"tablespace_map": true, "tablespace_map.old": true,
	"backup_manifest": true, "postgresql.auto.conf.tmp": true,
	"global/pg_control": true,
}

// tempRelRe matches temporary relation files (t<backend>_<relfilenode>[_fork][.seg]).
var tempRelRe = regexp.MustCompile(`^t\d+_\d+(_(fsm|vm|init))?(\.\d+)?$`)

// classify decides what happens to the entry at rel (slash-separated,
// relative to the data directory).
func classify(rel string, isDir bool) verdict {
	name := path.Base(rel)
	top := !strings.Contains(rel, "/")
	switch {
	case name == "lost+found":
		return skip
	case isDir && top && topContentsExcluded[name]:
		return dirEntry
	case isDir && (strings.HasPrefix(name, "pgsql_tmp") || name == "pg_stat_tmp" || name == ".wal-e"):
		return dirEntry
	case isDir:
		return include
	case topFilesExcluded[rel]:
		return skip
	case strings.HasPrefix(name, "pgsql_tmp"), strings.HasPrefix(name, "pg_internal.init"):
		return skip
	case tempRelRe.MatchString(name) && inRelationDir(rel):
		return skip
	}
	return include
}

// inRelationDir reports whether rel lies where relation files live.
func inRelationDir(rel string) bool {
	return strings.HasPrefix(rel, "base/") || strings.HasPrefix(rel, "pg_tblspc/")
}

// relFileRe splits a relation file name into relfilenode and fork.
var relFileRe = regexp.MustCompile(`^(\d+)(_(fsm|vm|init))?(\.\d+)?$`)

// unloggedSkips returns, for the names in one relation directory, the files
// of unlogged relations other than their init forks: PostgreSQL resets
// those relations from the init fork at the end of recovery, so it leaves
// them out of base backups too.
func unloggedSkips(names []string) map[string]bool {
	unlogged := map[string]bool{}
	for _, n := range names {
		if m := relFileRe.FindStringSubmatch(n); m != nil && m[3] == "init" {
			unlogged[m[1]] = true
		}
	}
	if len(unlogged) == 0 {
		return nil
	}
	out := map[string]bool{}
	for _, n := range names {
		if m := relFileRe.FindStringSubmatch(n); m != nil && unlogged[m[1]] && m[3] != "init" {
			out[n] = true
		}
	}
	return out
}
