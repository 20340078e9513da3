package basebackup

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/walden-pg/walden/walelog"
)

// offlineSession backs up a stopped cluster (--while-offline): no server
// calls, the position comes from pg_controldata. The backup is consistent
// as of the last checkpoint, so start and stop are the same position.
type offlineSession struct {
	pgdata string
	info   startInfo
}

// errServerRunning is WAL-E's refusal to take an offline backup of a
// running server.
var errServerRunning = &walelog.UserError{
	Msg:    "while_offline set, but pg looks to be running",
	Detail: "Found a postmaster.pid lockfile, and aborting",
	Hint:   "Shut down postgres.  If there is a stale lockfile, then remove it after being very sure postgres is not running.",
}

func (o *offlineSession) start(ctx context.Context, _ string) (startInfo, error) {
	if _, err := os.Stat(filepath.Join(o.pgdata, "postmaster.pid")); err == nil {
		return startInfo{}, errServerRunning
	}
	bin, err := BinDir(o.pgdata)
	if err != nil {
		return startInfo{}, err
	}
	cd, err := ControlData(ctx, bin, o.pgdata)
	if err != nil {
		return startInfo{}, err
	}
	i := startInfo{SegSize: DefaultSegmentSize, Version: serverVersion(ctx, bin)}
	redo, err := ParseLSN(cd["Latest checkpoint's REDO location"])
	if err != nil {
		return i, fmt.Errorf("pg_controldata: %w", err)
	}
	tli, err := strconv.ParseUint(cd["Latest checkpoint's TimeLineID"], 10, 32)
	if err != nil {
		return i, fmt.Errorf("pg_controldata: no checkpoint timeline: %w", err)
	}
	if n, err := strconv.ParseUint(cd["Bytes per WAL segment"], 10, 64); err == nil && n > 0 {
		i.SegSize = n
	}
	if n, err := strconv.ParseUint(cd["Database system identifier"], 10, 64); err == nil {
		i.SysID = &n
	}
	i.LSN, i.Timeline = redo, uint32(tli)
	// WAL-E took two characters of the REDO text here; the real name is the
	// REDO segment and the decimal offset in it, as for online backups.
	i.File = SegmentOf(i.Timeline, redo, i.SegSize)
	i.Offset = uint64(redo) % i.SegSize
	if v, err := os.ReadFile(filepath.Join(o.pgdata, "PG_VERSION")); err == nil {
		i.VersionNum = versionNum(strings.TrimSpace(string(v)))
	}
	o.info = i
	return i, nil
}

// versionNum turns PG_VERSION ("15", "9.6") into server_version_num's
// scale (150000, 90600).
func versionNum(v string) int {
	major, minor, _ := strings.Cut(v, ".")
	a, _ := strconv.Atoi(major)
	b, _ := strconv.Atoi(minor)
	return a*10000 + b*100
}

func (o *offlineSession) stop(context.Context) (stopInfo, error) {
	return stopInfo{LSN: o.info.LSN, File: o.info.File, Offset: o.info.Offset}, nil
}

func (o *offlineSession) abort() {}
func (o *offlineSession) close() {}

// BinDir finds the PostgreSQL programs matching the cluster in pgdata: the
// Debian directory of its major version, else pg_config's BINDIR, else the
// directory of postgres in PATH, else the newest /usr/lib/postgresql/*/bin.
func BinDir(pgdata string) (string, error) {
	if v, err := os.ReadFile(filepath.Join(pgdata, "PG_VERSION")); err == nil {
		dir := filepath.Join("/usr/lib/postgresql", strings.TrimSpace(string(v)), "bin")
		if isFile(filepath.Join(dir, "pg_ctl")) {
			return dir, nil
		}
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if isFile(filepath.Join(dir, "pg_ctl")) {
			return dir, nil
		}
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) < versionOf(dirs[j]) })
	for i := len(dirs) - 1; i >= 0; i-- {
		if isFile(filepath.Join(dirs[i], "pg_ctl")) {
			return dirs[i], nil
		}
	}
	return "", fmt.Errorf("cannot find the PostgreSQL programs (pg_ctl, pg_controldata): install PostgreSQL or put its bin directory in PATH")
}

func versionOf(binDir string) float64 {
	f, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return f
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

// ControlData runs pg_controldata on pgdata and returns its "key: value"
// lines.
func ControlData(ctx context.Context, binDir, pgdata string) (map[string]string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "pg_controldata"), pgdata)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("pg_controldata %s: %v: %s", pgdata, err, strings.TrimSpace(stderr.String()))
	}
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m, nil
}

// serverVersion is what WAL-E stored for offline backups: pg_config's VERSION.
func serverVersion(ctx context.Context, binDir string) string {
	for _, pc := range []string{filepath.Join(binDir, "pg_config"), "pg_config"} {
		if out, err := exec.CommandContext(ctx, pc, "--version").Output(); err == nil {
			return strings.TrimSpace(string(out))
		}
	}
	if out, err := exec.CommandContext(ctx, filepath.Join(binDir, "postgres"), "--version").Output(); err == nil {
		return strings.TrimSpace(string(out))
	}
	return ""
}
