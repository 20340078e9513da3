package verify

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/walden-pg/walden/basebackup"
)

// control is what verify needs from a backup's global/pg_control: the
// cluster it belongs to and where an offline backup's WAL starts.
type control struct {
	SysID    uint64
	Version  uint32 // pg_control_version
	State    uint32
	Redo     uint64 // checkPointCopy.redo
	Timeline uint32 // checkPointCopy.ThisTimeLineID
}

// dbShutdowned is DBState's value for a cleanly stopped cluster.
const dbShutdowned = 1

// parseControl reads the fixed head of ControlFileData (little-endian):
// system_identifier at 0, pg_control_version at 8, state at 16, time at 24,
// checkPoint at 32; then, before version 11 (pg_control_version 1100), a
// prevCheckPoint; then checkPointCopy starting with redo and ThisTimeLineID.
func parseControl(b []byte) (control, error) {
	if len(b) < 64 {
		return control{}, fmt.Errorf("pg_control is %d bytes, too short", len(b))
	}
	le := binary.LittleEndian
	c := control{SysID: le.Uint64(b[0:]), Version: le.Uint32(b[8:]), State: le.Uint32(b[16:])}
	if c.Version < 900 || c.Version > 9999 {
		return control{}, fmt.Errorf("pg_control version %d is not one PostgreSQL writes", c.Version)
	}
	off := 40
	if c.Version < 1100 {
		off = 48
	}
	c.Redo = le.Uint64(b[off:])
	c.Timeline = le.Uint32(b[off+8:])
	return c, nil
}

// label is what backup_label says about the backup's start.
type label struct {
	Start    uint64
	File     string
	Timeline uint32
}

// parseLabel reads "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)"
// and "START TIMELINE: 1".
func parseLabel(b []byte) (label, error) {
	var l label
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			continue
		}
		switch k {
		case "START WAL LOCATION":
			lsn, rest, _ := strings.Cut(v, " ")
			p, err := basebackup.ParseLSN(lsn)
			if err != nil {
				return l, fmt.Errorf("backup_label: %v", err)
			}
			l.Start = uint64(p)
			l.File = strings.TrimSuffix(strings.TrimPrefix(rest, "(file "), ")")
		case "START TIMELINE":
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			if err != nil {
				return l, fmt.Errorf("backup_label: bad START TIMELINE %q", v)
			}
			l.Timeline = uint32(n)
		}
	}
	if l.File == "" {
		return l, fmt.Errorf("backup_label has no START WAL LOCATION")
	}
	return l, nil
}

// majorOf turns PostgreSQL's version text (PG_VERSION "15" or "9.6",
// extended_version.txt "PostgreSQL 15.18 ...") into a major version (9 for 9.x).
func majorOf(s string) int {
	s = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(s), "PostgreSQL "))
	end := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if end >= 0 {
		s = s[:end]
	}
	n, _ := strconv.Atoi(s)
	return n
}

// majorOfNum turns server_version_num (150004, 90624) into a major version.
func majorOfNum(n int) int {
	if n >= 100000 {
		return n / 10000
	}
	return n / 10000 // 90624 -> 9
}
