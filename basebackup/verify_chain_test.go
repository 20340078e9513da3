package basebackup_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/walden-pg/walden/basebackup"
	"github.com/walden-pg/walden/verify"
)

func verifyOne(t *testing.T, c basebackup.TestChain, name string) verify.BackupReport {
	t.Helper()
	rep, err := verify.Run(context.Background(), verify.Options{Store: c.Store, Prefix: c.Prefix, Backup: name, Concurrency: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Backups) != 1 {
		t.Fatalf("%d backups verified", len(rep.Backups))
	}
	return rep.Backups[0]
}

func TestVerifyJudgesADeltaByItsWholeChain(t *testing.T) {
	c := basebackup.NewTestChain(t)
	r := verifyOne(t, c, c.Names[2])
	if !r.FilesOK || !slices.Equal(r.Chain, c.Names[:2]) {
		t.Fatalf("intact chain: files ok %v, chain %v, problems %v", r.FilesOK, r.Chain, r.Problems)
	}
	// A partition of the full backup damaged in place: the delta is not
	// restorable.
	p := filepath.Join(c.Dir, basebackup.PartitionKey(c.Names[0], 0, c.Ext))
	data, _ := os.ReadFile(p)
	data[len(data)/2] ^= 0xff
	os.WriteFile(p, data, 0o600)
	r = verifyOne(t, c, c.Names[2])
	if r.FilesOK || len(r.Problems) == 0 || !strings.Contains(r.Problems[0].Object, c.Names[0]) {
		t.Fatalf("damaged full: files ok %v, problems %+v", r.FilesOK, r.Problems)
	}
}

func TestVerifyFlagsADeltaWhoseParentIsGone(t *testing.T) {
	c := basebackup.NewTestChain(t)
	if err := c.Store.Delete(context.Background(), c.Keys[1]); err != nil {
		t.Fatal(err)
	}
	r := verifyOne(t, c, c.Names[2])
	if r.FilesOK || len(r.Problems) == 0 || !strings.Contains(r.Problems[0].Problem, c.Names[1]) {
		t.Fatalf("files ok %v, problems %+v", r.FilesOK, r.Problems)
	}
}
