package basebackup

import (
	"testing"

	"github.com/walden-pg/walden/storage"
)

// TestChain is a full backup and two deltas written by the chain writer,
// for tests outside the package (verify).
type TestChain struct {
	Store  storage.Store
	Prefix storage.Prefix
	Dir    string   // the file store's directory
	Names  []string // full, delta 1, delta 2
	Keys   []string // their sentinels' keys
	Ext    string
}

func NewTestChain(t *testing.T) TestChain {
	w, st, prefix, bs := chainFixture(t)
	c := TestChain{Store: st, Prefix: prefix, Dir: w.dir, Ext: w.format.Ext()}
	for _, b := range bs {
		c.Names = append(c.Names, b.name)
		c.Keys = append(c.Keys, b.key)
	}
	return c
}
