package check

import (
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// PGFacts is what the PostgreSQL checks look at, read in one connection.
type PGFacts struct {
	Version    string // server_version
	User       string
	Database   string
	InRecovery bool
	// Settings maps a setting's name to its value; a name is missing when
	// the role may not read it (archive_command is superuser-only).
	Settings map[string]Setting
	Archiver *ArchiverStats // nil when pg_stat_archiver could not be read
}

// Setting is one row of pg_settings.
type Setting struct {
	Value          string
	PendingRestart bool
}

// ArchiverStats is pg_stat_archiver's row.
type ArchiverStats struct {
	ArchivedCount    int64
	LastArchivedWAL  string
	LastArchivedTime *time.Time
	FailedCount      int64
	LastFailedWAL    string
	LastFailedTime   *time.Time
	StatsReset       *time.Time
}

// disabled is how PostgreSQL shows archive_command while archive_mode is off.
const disabled = "(disabled)"

var pgSettingNames = []string{"archive_mode", "archive_command", "archive_library", "wal_level"}

// ReadPostgres connects the way libpq would (PG* variables, ~/.pgpass),
// except that the database is postgres unless PGDATABASE says otherwise:
// a role's own database often does not exist.
func ReadPostgres(ctx context.Context) (*PGFacts, error) {
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return nil, err
	}
	if cfg.Database == "" {
		cfg.Database = "postgres"
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "walden check"
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))

	f := &PGFacts{Settings: map[string]Setting{}}
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version'), current_user, current_database(), pg_is_in_recovery()").
		Scan(&f.Version, &f.User, &f.Database, &f.InRecovery); err != nil {
		return nil, fmt.Errorf("reading the server's state: %w", err)
	}
	rows, err := conn.Query(ctx, "SELECT name, setting, pending_restart FROM pg_settings WHERE name = ANY($1)", pgSettingNames)
	if err != nil {
		return nil, fmt.Errorf("reading pg_settings: %w", err)
	}
	for rows.Next() {
		var name string
		var s Setting
		if err := rows.Scan(&name, &s.Value, &s.PendingRestart); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading pg_settings: %w", err)
		}
		f.Settings[name] = s
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading pg_settings: %w", err)
	}
	// With archive_mode off PostgreSQL shows archive_command as
	// "(disabled)"; the configuration files still say what it would run.
	if s, ok := f.Settings["archive_command"]; ok && s.Value == disabled {
		var v string
		err := conn.QueryRow(ctx, `SELECT setting FROM pg_file_settings
			WHERE name = 'archive_command' AND error IS NULL ORDER BY seqno DESC LIMIT 1`).Scan(&v)
		switch {
		case err == nil:
			f.Settings["archive_command"] = Setting{Value: v}
		case errors.Is(err, pgx.ErrNoRows):
			f.Settings["archive_command"] = Setting{Value: ""}
		}
	}
	var a ArchiverStats
	var archived, failed *string
	err = conn.QueryRow(ctx, `SELECT archived_count, last_archived_wal, last_archived_time,
		failed_count, last_failed_wal, last_failed_time, stats_reset FROM pg_stat_archiver`).
		Scan(&a.ArchivedCount, &archived, &a.LastArchivedTime, &a.FailedCount, &failed, &a.LastFailedTime, &a.StatsReset)
	if err == nil {
		a.LastArchivedWAL, a.LastFailedWAL = deref(archived), deref(failed)
		f.Archiver = &a
	}
	return f, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (f *PGFacts) connected() Result {
	role := "a primary"
	if f.InRecovery {
		role = "a standby"
	}
	return pass("postgres", "connected as %s to database %s of PostgreSQL %s, %s", f.User, f.Database, f.Version, role)
}

// EvalPostgres judges the facts: archiving on, through walden or the
// wal-e link, with enough WAL detail, and the archiver not failing.
func EvalPostgres(f *PGFacts) []Result {
	var out []Result
	unreadable := func(name string) Result {
		return fail(name, "cannot be read as role %s (needs superuser or pg_read_all_settings)", f.User)
	}

	if s, ok := f.Settings["archive_mode"]; !ok {
		out = append(out, unreadable("archive_mode"))
	} else if s.Value == "on" || s.Value == "always" {
		out = append(out, pass("archive_mode", "is %s", s.Value))
	} else {
		out = append(out, fail("archive_mode", "is %s (want on)%s", s.Value, pendingRestart(s)))
	}

	if s, ok := f.Settings["archive_command"]; !ok {
		out = append(out, unreadable("archive_command"))
	} else {
		out = append(out, evalArchiveCommand(s.Value))
	}
	// PostgreSQL 15 and later ignore archive_command while a library is set.
	if s, ok := f.Settings["archive_library"]; ok && s.Value != "" {
		out = append(out, fail("archive_library", "is %q, so PostgreSQL ignores archive_command (set it to '')", s.Value))
	}

	if s, ok := f.Settings["wal_level"]; !ok {
		out = append(out, unreadable("wal_level"))
	} else if s.Value == "replica" || s.Value == "logical" {
		out = append(out, pass("wal_level", "is %s", s.Value))
	} else {
		out = append(out, fail("wal_level", "is %s (want replica or logical)%s", s.Value, pendingRestart(s)))
	}

	if f.Archiver == nil {
		out = append(out, fail("archiver", "pg_stat_archiver cannot be read as role %s", f.User))
	} else {
		out = append(out, EvalArchiver(*f.Archiver))
	}
	return out
}

func pendingRestart(s Setting) string {
	if s.PendingRestart {
		return "; a new value waits for a restart"
	}
	return ""
}

func evalArchiveCommand(cmd string) Result {
	shown := RedactAssignments(cmd)
	if cmd == disabled {
		return skip("archive_command", "cannot be seen while archive_mode is off")
	}
	if strings.TrimSpace(cmd) == "" {
		return fail("archive_command", "is empty (want one calling walden wal-push %%p)")
	}
	call, ok := FindWalPush(cmd)
	if !ok {
		return fail("archive_command", "does not call walden or wal-e wal-push: %s", shown)
	}
	if !call.HasPath {
		return fail("archive_command", "calls %s wal-push without %%p: %s", call.Program, shown)
	}
	return pass("archive_command", "calls %s wal-push%s", call.Program, linkNote(call.Program))
}

// linkNote says where a wal-e path points, so an operator sees whether
// PostgreSQL still runs WAL-E or already walden through the link.
func linkNote(prog string) string {
	if !filepath.IsAbs(prog) {
		return ""
	}
	real, err := filepath.EvalSymlinks(prog)
	if err != nil {
		return ""
	}
	if real != prog {
		return " (a link to " + real + ")"
	}
	return ""
}

// WalPushCall is a wal-push invocation found in an archive_command.
type WalPushCall struct {
	Program string // the walden or wal-e word before wal-push, as written
	HasPath bool   // %p follows wal-push
}

// FindWalPush looks for "<...walden or wal-e...> [options] wal-push ... %p"
// within one simple command of a shell command line. The program is the
// nearest word before wal-push whose file name contains "walden" or
// "wal-e"; option words and the envdir directory (/etc/wal-e.d/env ends in
// "env") do not count.
func FindWalPush(cmd string) (WalPushCall, bool) {
	for _, simple := range simpleCommands(cmd) {
		words := strings.Fields(simple)
		for i, w := range words {
			if unquote(w) != "wal-push" {
				continue
			}
			for j := i - 1; j >= 0; j-- {
				p := unquote(words[j])
				if strings.HasPrefix(p, "-") {
					continue
				}
				base := path.Base(p)
				if strings.Contains(base, "walden") || strings.Contains(base, "wal-e") {
					call := WalPushCall{Program: p}
					for _, a := range words[i+1:] {
						if strings.Contains(a, "%p") {
							call.HasPath = true
						}
					}
					return call, true
				}
			}
		}
	}
	return WalPushCall{}, false
}

var separators = regexp.MustCompile(`&&|\|\||[;|&\n()]`)

// simpleCommands splits a command line at shell operators. Quoting is not
// parsed: archive_commands are short, and a separator inside quotes only
// makes the search stricter.
func simpleCommands(cmd string) []string {
	return separators.Split(cmd, -1)
}

func unquote(w string) string { return strings.Trim(w, `'"`) }

var assignment = regexp.MustCompile(`(^|\s)([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|'[^']*'|\S*)`)

// RedactAssignments hides the values of VAR=value words, the way secrets
// end up inline in an archive_command, before it is printed.
func RedactAssignments(cmd string) string {
	return assignment.ReplaceAllString(cmd, "${1}${2}=***")
}

// EvalArchiver reads pg_stat_archiver: the archiver is failing when its
// last failure is newer than its last success. Old failures it recovered
// from are only mentioned.
func EvalArchiver(a ArchiverStats) Result {
	last := "nothing archived yet"
	if a.LastArchivedTime != nil {
		last = fmt.Sprintf("last archived %s at %s", a.LastArchivedWAL, stamp(*a.LastArchivedTime))
	}
	if a.LastFailedTime == nil {
		return pass("archiver", "%s; no failures", last)
	}
	if a.LastArchivedTime == nil {
		return fail("archiver", "is failing and has archived nothing yet: last failed %s at %s (%s)",
			a.LastFailedWAL, stamp(*a.LastFailedTime), plural(int(a.FailedCount), "failure"))
	}
	if a.LastFailedTime.After(*a.LastArchivedTime) {
		// The last success bounds when the failures began.
		return fail("archiver", "is failing since %s: last failed %s at %s (%s)",
			stamp(*a.LastArchivedTime), a.LastFailedWAL, stamp(*a.LastFailedTime), plural(int(a.FailedCount), "failure"))
	}
	return pass("archiver", "%s; %s earlier, the last at %s", last, plural(int(a.FailedCount), "failure"), stamp(*a.LastFailedTime))
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
