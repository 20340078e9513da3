package main

import (
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/walden-pg/walden/wal"
)

// testSysID is the system identifier of synthetic segments.
const testSysID = 7300000000000000001

// walSegment builds a 16 MiB WAL segment whose first page header is valid
// for name (PostgreSQL 15 magic), with fill repeated as its body.
func walSegment(t testing.TB, name string, fill string) []byte {
	return walSegmentOf(t, name, testSysID, fill)
}

func walSegmentOf(t testing.TB, name string, sysid uint64, fill string) []byte {
	t.Helper()
	s, err := wal.ParseSegment(name)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 16<<20)
	for i := wal.LongHeaderSize; i < len(data); i += len(fill) {
		copy(data[i:], fill)
	}
	le := binary.LittleEndian
	le.PutUint16(data[0:], 0xD110)
	le.PutUint16(data[2:], 0x0002)
	le.PutUint32(data[4:], s.TLI)
	le.PutUint64(data[8:], s.StartLSN(16<<20))
	le.PutUint32(data[16:], 0)
	le.PutUint64(data[24:], sysid)
	le.PutUint32(data[32:], 16<<20)
	le.PutUint32(data[36:], 8192)
	if _, err := wal.CheckSegmentFile(name, data); err != nil {
		t.Fatal(err)
	}
	return data
}

// clusterSysID reads a data directory's system identifier from pg_control.
func clusterSysID(t testing.TB, dataDir string) uint64 {
	t.Helper()
	f, err := os.Open(filepath.Join(dataDir, "global", "pg_control"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [8]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		t.Fatal(err)
	}
	return binary.LittleEndian.Uint64(b[:])
}
