package basebackup

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Sentinel is the JSON object written last, beside the backup directory.
// It carries WAL-E's four keys, the keys WAL-G reads, and walden's own
// manifest. Readers ignore key order and unknown keys (design 8.6).
type Sentinel struct {
	// WAL-E
	StopSegment       string `json:"wal_segment_backup_stop"`
	StopOffset        string `json:"wal_segment_offset_backup_stop"`
	ExpandedSizeBytes int64  `json:"expanded_size_bytes"`
	Spec              *Spec  `json:"spec"`

	Extra
}

// Extra holds the keys after WAL-E's four: those WAL-G reads, and walden's
// manifest. Marshal writes them through encoding/json as one block.
type Extra struct {
	LSN              *uint64    `json:"LSN,omitempty"`
	FinishLSN        *uint64    `json:"FinishLSN,omitempty"`
	PgVersion        int        `json:"PgVersion,omitempty"`
	SystemIdentifier *uint64    `json:"SystemIdentifier,omitempty"`
	UncompressedSize int64      `json:"UncompressedSize,omitempty"`
	CompressedSize   int64      `json:"CompressedSize,omitempty"`
	StartTime        *time.Time `json:"StartTime,omitempty"`
	FinishTime       *time.Time `json:"FinishTime,omitempty"`
	Hostname         string     `json:"Hostname,omitempty"`
	DataDir          string     `json:"DataDir,omitempty"`

	Walden *Manifest `json:"walden,omitempty"`
}

// FormatVersion is the version of the walden manifest layout.
const FormatVersion = 1

// Manifest is walden's record of what a backup stored, so that a backup
// can be verified without restoring it.
type Manifest struct {
	FormatVersion int    `json:"format_version"`
	Compression   string `json:"compression"`
	// EncryptionKey is the OpenPGP fingerprint of the recipient key, ""
	// when the partitions are not encrypted.
	EncryptionKey string          `json:"encryption_key_fingerprint"`
	Partitions    []PartitionInfo `json:"partitions"`
	Offline       bool            `json:"offline,omitempty"`
	Timeline      uint32          `json:"timeline,omitempty"`
	StartLSN      string          `json:"start_lsn,omitempty"`
	FinishLSN     string          `json:"finish_lsn,omitempty"`
	// Files describes the file list object (format 2, DELTA.md); a backup
	// without one cannot be the parent of a delta.
	Files *FilesInfo `json:"files,omitempty"`
	// Delta is set only in a delta's sentinel.
	Delta *DeltaInfo `json:"delta,omitempty"`
}

// PartitionInfo describes one stored partition.
type PartitionInfo struct {
	Name         string `json:"name"`
	StoredSize   int64  `json:"stored_size"`
	SHA256       string `json:"sha256"`
	ExpandedSize int64  `json:"expanded_size"`
	Members      int    `json:"members"`
}

// Spec is WAL-E's tablespace restore specification:
//
//	{"base_prefix": "/data/", "tablespaces": ["16384"], "16384": {"loc": "/ts/", "link": "pg_tblspc/16384"}}
type Spec struct {
	BasePrefix  string
	Tablespaces []string
	Locations   map[string]TablespaceLocation
	hasTS       bool // the "tablespaces" key was present
}

// TablespaceLocation is where one tablespace lives and its link in PGDATA.
type TablespaceLocation struct {
	Loc  string `json:"loc"`
	Link string `json:"link"`
}

// HasTablespacesKey reports whether the spec names its tablespaces (WAL-E
// only verifies symlinks then).
func (s *Spec) HasTablespacesKey() bool { return s.hasTS || len(s.Tablespaces) > 0 }

// MarshalJSON writes WAL-E's key order: base_prefix, tablespaces, then one
// object per tablespace in list order.
func (s Spec) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"base_prefix": `)
	writeJSON(&b, s.BasePrefix)
	b.WriteString(`, "tablespaces": `)
	ts := s.Tablespaces
	if ts == nil {
		ts = []string{}
	}
	writeJSON(&b, ts)
	for _, oid := range s.Tablespaces {
		b.WriteString(", ")
		writeJSON(&b, oid)
		b.WriteString(`: {"loc": `)
		writeJSON(&b, s.Locations[oid].Loc)
		b.WriteString(`, "link": `)
		writeJSON(&b, s.Locations[oid].Link)
		b.WriteString("}")
	}
	b.WriteString("}")
	return b.Bytes(), nil
}

// UnmarshalJSON reads any key order and ignores keys it does not know.
func (s *Spec) UnmarshalJSON(data []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	*s = Spec{Locations: map[string]TablespaceLocation{}}
	if v, ok := m["base_prefix"]; ok {
		if err := json.Unmarshal(v, &s.BasePrefix); err != nil {
			return fmt.Errorf("spec.base_prefix: %w", err)
		}
	}
	if v, ok := m["tablespaces"]; ok {
		s.hasTS = true
		if err := json.Unmarshal(v, &s.Tablespaces); err != nil {
			return fmt.Errorf("spec.tablespaces: %w", err)
		}
	}
	for _, oid := range s.Tablespaces {
		var loc TablespaceLocation
		if v, ok := m[oid]; ok {
			if err := json.Unmarshal(v, &loc); err != nil {
				return fmt.Errorf("spec.%s: %w", oid, err)
			}
		}
		s.Locations[oid] = loc
	}
	return nil
}

// writeJSON writes v as Python's json.dumps does for strings and lists:
// ASCII only, ", " between list items.
func writeJSON(b *bytes.Buffer, v any) {
	switch x := v.(type) {
	case string:
		b.WriteString(pyString(x))
	case []string:
		b.WriteString("[")
		for i, s := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(pyString(s))
		}
		b.WriteString("]")
	}
}

// pyString quotes s like json.dumps with ensure_ascii.
func pyString(s string) string {
	var b bytes.Buffer
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r > 0x7e:
			if r > 0xffff {
				r -= 0x10000
				fmt.Fprintf(&b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Marshal renders the sentinel: WAL-E's four keys first, exactly as WAL-E
// wrote them (Python's separators), then WAL-G's and walden's keys.
func (s *Sentinel) Marshal() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"wal_segment_backup_stop": `)
	writeJSON(&b, s.StopSegment)
	b.WriteString(`, "wal_segment_offset_backup_stop": `)
	writeJSON(&b, s.StopOffset)
	fmt.Fprintf(&b, `, "expanded_size_bytes": %d, "spec": `, s.ExpandedSizeBytes)
	spec := s.Spec
	if spec == nil {
		spec = &Spec{}
	}
	sb, _ := spec.MarshalJSON()
	b.Write(sb)
	extra, err := json.Marshal(s.Extra)
	if err != nil {
		return nil, err
	}
	if len(extra) > 2 {
		b.WriteString(", ")
		b.Write(extra[1 : len(extra)-1])
	}
	b.WriteString("}")
	return b.Bytes(), nil
}

// ParseSentinel reads a sentinel written by WAL-E, WAL-G or walden.
func ParseSentinel(data []byte) (*Sentinel, error) {
	var s Sentinel
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("backup sentinel is not valid JSON: %w", err)
	}
	return &s, nil
}

// Finished is when the backup completed, if the sentinel says.
func (s *Sentinel) Finished() (time.Time, bool) {
	if s == nil || s.FinishTime == nil || s.FinishTime.IsZero() {
		return time.Time{}, false
	}
	return *s.FinishTime, true
}
