package basebackup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/walelog"
)

// Target is a point-in-time restore's recovery target; at most one of
// Time, Name, LSN, XID and Immediate is set (none: the end of the archive).
type Target struct {
	Time      string // as PostgreSQL reads recovery_target_time
	Name      string
	LSN       string
	XID       string
	Immediate bool
	Timeline  string // recovery_target_timeline: latest (default), current or a number
}

// timeLayouts are the forms of --target-time walden understands.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z07",
	"2006-01-02 15:04:05.999999999-0700",
	"2006-01-02T15:04:05.999999999Z07",
	"2006-01-02T15:04:05.999999999-0700",
}

var zoneRe = regexp.MustCompile(`(Z|[+-]\d\d(:?\d\d)?)$`)

// ParseTargetTime reads a target time. One without a zone is taken as UTC,
// and NormalizedTime then spells the zone out so PostgreSQL agrees.
func ParseTargetTime(s string) (time.Time, error) {
	v := strings.TrimSpace(s)
	if u, ok := strings.CutSuffix(v, " UTC"); ok {
		v = u + "+00"
	}
	if !zoneRe.MatchString(v) {
		v += "+00"
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("cannot read target time %q (use e.g. 2026-11-24 05:48:16.946168+00)", s)
}

// NormalizedTime is t in the form written to recovery_target_time.
func NormalizedTime(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05.999999") + "+00"
}

// ChooseBackup picks the backup a restore starts from: the one named
// (or LATEST); else, for a time target, the newest backup that finished
// before it; for an LSN target the newest whose end is known to lie before
// it, or is not known; otherwise the latest.
func ChooseBackup(ctx context.Context, st storage.Store, name string, t Target) (Backup, error) {
	if name != "" {
		return Resolve(ctx, st, name)
	}
	bs, err := List(ctx, st)
	if err != nil {
		return Backup{}, err
	}
	if len(bs) == 0 {
		return Backup{}, &walelog.UserError{Msg: "no backups found for fetching", Detail: "The store holds no complete base backup."}
	}
	var when time.Time
	var lsn LSN
	switch {
	case t.Time != "":
		if when, err = ParseTargetTime(t.Time); err != nil {
			return Backup{}, err
		}
	case t.LSN != "":
		if lsn, err = ParseLSN(t.LSN); err != nil {
			return Backup{}, err
		}
	default:
		b, ok, err := LatestUsable(ctx, st, bs)
		if err != nil {
			return Backup{}, err
		}
		if !ok {
			return Backup{}, &walelog.UserError{Msg: "no backups found for fetching", Detail: "Every base backup in the store is broken (see backup-list)."}
		}
		return b, nil
	}
	best := -1
	for i := range bs {
		// A broken backup is never chosen; an unreadable sentinel only
		// costs the finish time and LSN here (fetching reports it).
		if bs[i].Check(ctx, st) != nil && bs[i].Broken != "" {
			continue
		}
		if bs[i].IsDelta && CheckChain(ctx, st, bs, i) != nil && bs[i].Broken != "" {
			continue // a delta whose chain is broken cannot be restored
		}
		b := bs[i]
		if !when.IsZero() && !BackupTime(b).Before(when) {
			continue
		}
		if lsn != 0 && b.Sentinel != nil && b.Sentinel.FinishLSN != nil && LSN(*b.Sentinel.FinishLSN) > lsn {
			continue
		}
		if best < 0 || !BackupTime(b).Before(BackupTime(bs[best])) {
			best = i
		}
	}
	if best < 0 {
		what := "time " + t.Time
		if lsn != 0 {
			what = "LSN " + t.LSN
		}
		return Backup{}, &walelog.UserError{
			Msg:    "no backup can reach the recovery target",
			Detail: fmt.Sprintf("No base backup finished before the target %s.", what),
			Hint:   "Choose a later target, or list backups with backup-list --detail.",
		}
	}
	return bs[best], nil
}

// MajorVersion reads PG_VERSION: 15 for "15", 9 for "9.6" (minor dropped).
func MajorVersion(pgdata string) (int, error) {
	b, err := os.ReadFile(filepath.Join(pgdata, "PG_VERSION"))
	if err != nil {
		return 0, err
	}
	v := strings.TrimSpace(string(b))
	major, _, _ := strings.Cut(v, ".")
	n, err := strconv.Atoi(major)
	if err != nil {
		return 0, fmt.Errorf("PG_VERSION holds %q", v)
	}
	return n, nil
}

// ConfQuote makes s a single-quoted postgresql.conf string.
func ConfQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, "'", "''", "\n", `\n`)
	return "'" + r.Replace(s) + "'"
}

// ShellQuote quotes s for /bin/sh when it needs it.
func ShellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// RecoverySettings are the lines that make the cluster recover to t.
func RecoverySettings(restoreCommand string, t Target) [][2]string {
	s := [][2]string{{"restore_command", restoreCommand}}
	switch {
	case t.Time != "":
		if tt, err := ParseTargetTime(t.Time); err == nil {
			s = append(s, [2]string{"recovery_target_time", NormalizedTime(tt)})
		} else {
			s = append(s, [2]string{"recovery_target_time", t.Time})
		}
	case t.Name != "":
		s = append(s, [2]string{"recovery_target_name", t.Name})
	case t.LSN != "":
		s = append(s, [2]string{"recovery_target_lsn", t.LSN})
	case t.XID != "":
		s = append(s, [2]string{"recovery_target_xid", t.XID})
	case t.Immediate:
		s = append(s, [2]string{"recovery_target", "immediate"})
	}
	tl := t.Timeline
	if tl == "" {
		tl = "latest"
	}
	s = append(s, [2]string{"recovery_target_timeline", tl}, [2]string{"recovery_target_action", "promote"})
	return s
}

// WriteRecovery configures pgdata to recover with the settings: on 12 and
// later in postgresql.auto.conf plus recovery.signal (and standby.signal
// removed, which would keep the server a standby forever); before 12 in
// recovery.conf. It returns the files written.
func WriteRecovery(pgdata string, settings [][2]string) ([]string, error) {
	major, err := MajorVersion(pgdata)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n# Recovery settings written by walden restore at %s\n", time.Now().UTC().Format(time.RFC3339))
	for _, kv := range settings {
		fmt.Fprintf(&b, "%s = %s\n", kv[0], ConfQuote(kv[1]))
	}
	uid, gid := ownerOf(pgdata)
	if major < 12 {
		p := filepath.Join(pgdata, "recovery.conf")
		return []string{p}, writeOwned(p, []byte(b.String()), false, uid, gid)
	}
	auto := filepath.Join(pgdata, "postgresql.auto.conf")
	if err := writeOwned(auto, []byte(b.String()), true, uid, gid); err != nil {
		return nil, err
	}
	sig := filepath.Join(pgdata, "recovery.signal")
	if err := writeOwned(sig, nil, false, uid, gid); err != nil {
		return nil, err
	}
	if err := os.Remove(filepath.Join(pgdata, "standby.signal")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return []string{auto, sig}, nil
}

// WriteMissingConfig writes what PostgreSQL needs to start when neither the
// backup nor the operator supplied it (WAL-E's backups hold no
// configuration files): an empty postgresql.conf (defaults), pg_hba.conf
// letting the postgres OS user in as postgres over the socket, and an
// empty pg_ident.conf.
func WriteMissingConfig(pgdata string, missing []string) error {
	content := map[string]string{
		"postgresql.conf": "# Written by walden restore: the backup held no postgresql.conf.\n# PostgreSQL's defaults apply; put this server's settings here.\n",
		"pg_hba.conf":     "# Written by walden restore: the backup held no pg_hba.conf.\n# TYPE  DATABASE  USER      METHOD\nlocal   all       postgres  peer\n",
		"pg_ident.conf":   "# Written by walden restore: the backup held no pg_ident.conf.\n",
	}
	uid, gid := ownerOf(pgdata)
	for _, m := range missing {
		if err := writeOwned(filepath.Join(pgdata, m), []byte(content[m]), false, uid, gid); err != nil {
			return err
		}
	}
	return nil
}

func writeOwned(p string, data []byte, appendTo bool, uid, gid int) error {
	flag := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if appendTo {
		flag = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	f, err := os.OpenFile(p, flag, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil && uid >= 0 {
		err = f.Chown(uid, gid)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ownerOf is the owner of pgdata when walden runs as root, so files it
// writes there belong to the cluster's user; -1 otherwise.
func ownerOf(pgdata string) (int, int) {
	if os.Geteuid() != 0 {
		return -1, -1
	}
	fi, err := os.Stat(pgdata)
	if err != nil {
		return -1, -1
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return -1, -1
	}
	return int(st.Uid), int(st.Gid)
}

// DisableArchiving appends archive_mode = off to postgresql.auto.conf (or
// recovery.conf's sibling postgresql.auto.conf before 12), so the server
// in pgdata archives nothing into the store until an operator turns it on.
func DisableArchiving(pgdata, why string) error {
	uid, gid := ownerOf(pgdata)
	line := fmt.Sprintf("\n# %s\narchive_mode = 'off'\n", why)
	return writeOwned(filepath.Join(pgdata, "postgresql.auto.conf"), []byte(line), true, uid, gid)
}
