package basebackup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walden-pg/walden/walelog"
)

// session is the server side of one backup: start, stop, or abort.
type session interface {
	start(ctx context.Context, label string) (startInfo, error)
	// stop ends the backup, waiting until the WAL it needs is archived.
	stop(ctx context.Context) (stopInfo, error)
	// abort ends an unfinished backup without waiting; best effort.
	abort()
	close()
}

type startInfo struct {
	LSN        LSN
	File       string // WAL file name of the start position
	Offset     uint64
	Timeline   uint32
	Version    string // extended_version.txt
	VersionNum int    // server_version_num
	SysID      *uint64
	SegSize    uint64
	Standby    bool
}

type stopInfo struct {
	LSN           LSN
	File          string
	Offset        uint64
	Label         string // backup_label; "" for an offline backup
	TablespaceMap string
}

// pgSession is a non-exclusive hot backup over one held connection: the
// server ties the backup to the session, so if walden dies the backup ends.
type pgSession struct {
	conn   *pgx.Conn
	info   startInfo
	begun  bool
	pgdata string
	// waitArchive: the server archives this backup's WAL (archive_mode on
	// a primary, always on a standby), so stop waits for it.
	waitArchive bool
	warn        func(string) // says that the wait for archiving drags on
	walTimeout  time.Duration
}

// connect opens the session's connection from the PG* variables, as libpq
// would, on database postgres unless PGDATABASE says otherwise (WAL-E ran
// psql -d postgres).
func connect(ctx context.Context, connString string) (*pgSession, error) {
	if connString == "" {
		if _, ok := os.LookupEnv("PGDATABASE"); !ok {
			connString = "dbname=postgres"
		}
	}
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["application_name"] = "walden backup-push"
	cfg.RuntimeParams["statement_timeout"] = "0"
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 30 * time.Second
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &pgSession{conn: conn}, nil
}

// checkDataDir makes sure the server backs up the directory being read. A
// role without pg_read_all_settings cannot see data_directory; then the
// check is skipped.
func (s *pgSession) checkDataDir(ctx context.Context, pgdata string) error {
	var dir string
	if err := s.conn.QueryRow(ctx, "SELECT current_setting('data_directory')").Scan(&dir); err != nil {
		return nil
	}
	a, err1 := filepath.EvalSymlinks(dir)
	b, err2 := filepath.EvalSymlinks(pgdata)
	if err1 == nil && err2 == nil && a != b {
		return fmt.Errorf("the server this connection reaches runs on %s, not on %s (check PGHOST/PGPORT)", dir, pgdata)
	}
	return nil
}

func (s *pgSession) start(ctx context.Context, label string) (startInfo, error) {
	var i startInfo
	var standby bool
	if err := s.conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int, version(), pg_is_in_recovery()").
		Scan(&i.VersionNum, &i.Version, &standby); err != nil {
		return i, err
	}
	i.Standby = standby
	var archiveMode string
	if err := s.conn.QueryRow(ctx, "SELECT current_setting('archive_mode')").Scan(&archiveMode); err == nil {
		s.waitArchive = archiveMode == "always" || (archiveMode == "on" && !standby)
		if archiveMode == "off" && !standby {
			// Its WAL would never reach the store: the backup could not
			// be restored. Refused before anything is uploaded.
			return i, &walelog.UserError{
				Msg:    "Could not start hot backup",
				Detail: "archive_mode is off on this server, so the WAL the backup needs would never reach the store.",
				Hint:   "Set archive_mode = on and an archive_command running wal-push into this store (restart needed), or back up a stopped cluster with --while-offline.",
			}
		}
	}
	if i.VersionNum < 90600 {
		return i, fmt.Errorf("PostgreSQL %d is too old: non-exclusive backups need 9.6 or later", i.VersionNum)
	}
	var sysid int64
	if err := s.conn.QueryRow(ctx, "SELECT system_identifier FROM pg_control_system()").Scan(&sysid); err == nil {
		u := uint64(sysid)
		i.SysID = &u
	}
	i.SegSize = DefaultSegmentSize
	var setting, unit string
	if err := s.conn.QueryRow(ctx, "SELECT setting, coalesce(unit, '') FROM pg_settings WHERE name = 'wal_segment_size'").Scan(&setting, &unit); err == nil {
		if n, err := strconv.ParseUint(setting, 10, 64); err == nil {
			i.SegSize = n * unitBytes(unit)
		}
	}
	q := "SELECT pg_backup_start($1, true)::text"
	if i.VersionNum < 150000 {
		q = "SELECT pg_start_backup($1, true, false)::text"
	}
	var lsn string
	if err := s.conn.QueryRow(ctx, q, label).Scan(&lsn); err != nil {
		return i, err
	}
	s.begun = true
	l, err := ParseLSN(lsn)
	if err != nil {
		return i, err
	}
	i.LSN = l
	if i.File, i.Offset, i.Timeline, err = s.fileNameOffset(ctx, l, i); err != nil {
		return i, err
	}
	s.info = i
	return i, nil
}

// fileNameOffset asks the server on a primary (so names match WAL-E's
// exactly); a standby refuses pg_walfile_name_offset, so there walden
// computes it from the last restartpoint's timeline.
func (s *pgSession) fileNameOffset(ctx context.Context, l LSN, i startInfo) (string, uint64, uint32, error) {
	var tli int64
	if err := s.conn.QueryRow(ctx, "SELECT timeline_id FROM pg_control_checkpoint()").Scan(&tli); err != nil {
		return "", 0, 0, err
	}
	if !i.Standby {
		fn := "pg_walfile_name_offset"
		if i.VersionNum < 100000 {
			fn = "pg_xlogfile_name_offset"
		}
		var file string
		var off int64
		if err := s.conn.QueryRow(ctx, "SELECT file_name, file_offset FROM "+fn+"($1::pg_lsn)", l.String()).Scan(&file, &off); err != nil {
			return "", 0, 0, err
		}
		if t, err := strconv.ParseUint(file[:8], 16, 32); err == nil {
			tli = int64(t)
		}
		return file, uint64(off), uint32(tli), nil
	}
	file, off := FileNameOffset(uint32(tli), l, i.SegSize)
	return file, off, uint32(tli), nil
}

// stop ends the backup. PostgreSQL's own wait for the WAL to be archived
// polls once a second; walden asks for no wait and polls the same status
// files itself, more often, which saves about a second per backup.
func (s *pgSession) stop(ctx context.Context) (stopInfo, error) {
	var o stopInfo
	var q string
	switch {
	case s.info.VersionNum >= 150000:
		q = "SELECT lsn::text, labelfile, coalesce(spcmapfile, '') FROM pg_backup_stop(false)"
	case s.info.VersionNum >= 100000:
		q = "SELECT lsn::text, labelfile, coalesce(spcmapfile, '') FROM pg_stop_backup(false, false)"
	default:
		q = "SELECT lsn::text, labelfile, coalesce(spcmapfile, '') FROM pg_stop_backup(false)"
	}
	var lsn string
	if err := s.conn.QueryRow(ctx, q).Scan(&lsn, &o.Label, &o.TablespaceMap); err != nil {
		return o, err
	}
	s.begun = false
	l, err := ParseLSN(lsn)
	if err != nil {
		return o, err
	}
	o.LSN = l
	var tli uint32
	if o.File, o.Offset, tli, err = s.fileNameOffset(ctx, l, s.info); err != nil {
		return o, err
	}
	if s.waitArchive {
		// The names PostgreSQL waits for: the last segment and the backup
		// history file (named after the start segment, offset in hex).
		hist := fmt.Sprintf("%s.%08X.backup", SegmentOf(tli, s.info.LSN, s.info.SegSize), uint64(s.info.LSN)%s.info.SegSize)
		timeout := s.walTimeout
		if timeout <= 0 {
			timeout = DefaultWALTimeout
		}
		wctx, cancel := context.WithTimeoutCause(ctx, timeout, errArchiveTimeout)
		err := waitArchived(wctx, s.walDir(), []string{o.File, hist}, s.warn)
		cancel()
		if errors.Is(err, errArchiveTimeout) {
			return o, &walelog.UserError{
				Msg:    "the WAL this backup needs was not archived",
				Detail: fmt.Sprintf("PostgreSQL's archiver did not archive %s within %s (WALDEN_BACKUP_WAL_TIMEOUT); no sentinel was written.", o.File, timeout),
				Hint:   "Check archive_command and the server log for archiver failures.",
			}
		}
		if err != nil {
			return o, err
		}
	}
	return o, nil
}

func (s *pgSession) walDir() string {
	if s.info.VersionNum < 100000 {
		return filepath.Join(s.pgdata, "pg_xlog")
	}
	return filepath.Join(s.pgdata, "pg_wal")
}

var errArchiveTimeout = errors.New("timed out waiting for the archiver")

// waitArchived waits until PostgreSQL's archiver is done with every named
// WAL file, by PostgreSQL's own test (XLogArchiveIsBusy): a .done status
// file, or no .ready and the file itself gone.
func waitArchived(ctx context.Context, walDir string, names []string, warn func(string)) error {
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	busy := func(n string) bool {
		st := filepath.Join(walDir, "archive_status", n)
		switch {
		case exists(st + ".done"):
			return false
		case exists(st + ".ready"):
			return true
		case exists(st + ".done"):
			return false
		}
		_, err := os.Stat(filepath.Join(walDir, n))
		return !errors.Is(err, fs.ErrNotExist)
	}
	start, nextWarn := time.Now(), 60*time.Second
	delay := 10 * time.Millisecond
	for {
		if !slices.ContainsFunc(names, busy) {
			return nil
		}
		if warn != nil && time.Since(start) > nextWarn {
			warn(fmt.Sprintf("still waiting for %s to be archived after %s; check archive_command", strings.Join(names, " and "), time.Since(start).Round(time.Second)))
			nextWarn *= 2
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(delay):
		}
		delay = min(delay*2, 200*time.Millisecond)
	}
}

func (s *pgSession) abort() {
	if !s.begun || s.conn.IsClosed() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q := "SELECT pg_backup_stop(false)"
	switch {
	case s.info.VersionNum < 100000:
		q = "SELECT pg_stop_backup(false)"
	case s.info.VersionNum < 150000:
		q = "SELECT pg_stop_backup(false, false)"
	}
	_, _ = s.conn.Exec(ctx, q)
	s.begun = false
}

func (s *pgSession) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Closing the session also ends a backup still in progress on it.
	_ = s.conn.Close(ctx)
}

// unitBytes converts a pg_settings unit to bytes.
func unitBytes(unit string) uint64 {
	switch unit {
	case "8kB":
		return 8192
	case "kB":
		return 1 << 10
	case "MB":
		return 1 << 20
	}
	return 1
}

// watch returns a context that ends when the server stops answering, so a
// backup whose server went away fails now rather than after uploading
// everything. The returned stop function ends the watch (idempotent); the
// connection is free for other use only after it returned.
func (s *pgSession) watch(ctx context.Context) (context.Context, func()) {
	wctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(watchEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-wctx.Done():
				return
			case <-t.C:
				pctx, pcancel := context.WithTimeout(wctx, 30*time.Second)
				err := s.conn.Ping(pctx)
				pcancel()
				if err != nil && wctx.Err() == nil {
					cancel(fmt.Errorf("lost the connection to PostgreSQL: %w", err))
					return
				}
			}
		}
	}()
	var once sync.Once
	return wctx, func() { once.Do(func() { close(done); wg.Wait() }) }
}

// watchEvery is how often a running backup checks its server.
var watchEvery = 10 * time.Second
