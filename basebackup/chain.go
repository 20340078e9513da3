package basebackup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/walden-pg/walden/basebackup/tarx"
	"github.com/walden-pg/walden/blob"
	"github.com/walden-pg/walden/storage"
)

// maxChainLen bounds a chain walk, so that a store crafted with a very long
// chain cannot make a restore loop for ever.
const maxChainLen = 10000

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// deltaManifestProblem says what makes a delta's sentinel unusable as one,
// "" when nothing does. It needs the sentinel loaded.
func (b *Backup) deltaManifestProblem() string {
	m := b.Sentinel.Walden
	switch {
	case m == nil:
		return "its sentinel has no walden manifest"
	case m.Delta == nil:
		return "its sentinel does not name its parent (no delta manifest)"
	case m.Files == nil:
		return "its sentinel does not describe its file list"
	case m.Files.Name == "" || strings.Contains(m.Files.Name, "/") || !strings.HasPrefix(m.Files.Name, FilesObject):
		return fmt.Sprintf("its sentinel names a bad file list %q", m.Files.Name)
	case m.Delta.Step < 1:
		return fmt.Sprintf("its sentinel records step %d (a delta's is at least 1)", m.Delta.Step)
	}
	_, parentStart, _ := ParseDeltaName(b.Name)
	p := m.Delta.Parent
	if !(exactNameRe.MatchString(p) || IsDeltaName(p)) || p[:nameLen] != parentStart {
		return fmt.Sprintf("its sentinel names the parent %q, which its name %s does not", p, b.Name)
	}
	if b.listed {
		size, ok := b.sizes[m.Files.Name]
		if !ok {
			return fmt.Sprintf("its file list %s is missing from the store", m.Files.Name)
		}
		if size != m.Files.StoredSize {
			return fmt.Sprintf("its file list %s is %d bytes in the store, the backup recorded %d", m.Files.Name, size, m.Files.StoredSize)
		}
	}
	return ""
}

// CheckChain checks, from the store's listing in bs, the chain of the
// delta bs[i] down to its full backup: every member listed and passing
// Check, each parent's sentinel the one its child recorded (SHA-256), one
// system identifier and timeline, consistent steps, no cycle, and a file
// list in the full backup. A broken chain marks bs[i] Broken and returns
// the reason; a failure to read returns an error without marking it.
func CheckChain(ctx context.Context, st storage.Store, bs []Backup, i int) error {
	if bs[i].Broken != "" {
		return errors.New(bs[i].Broken)
	}
	_, err := walkChain(ctx, st, bs, i)
	var ce *chainError
	if errors.As(err, &ce) {
		bs[i].Broken = ce.why
	}
	return err
}

// chainError is a chain found broken (as opposed to one that could not be
// read).
type chainError struct{ why string }

func (e *chainError) Error() string { return e.why }

// walkChain returns the indexes in bs of bs[i]'s chain, oldest (the full
// backup) first.
func walkChain(ctx context.Context, st storage.Store, bs []Backup, i int) ([]int, error) {
	idx := make(map[string]int, len(bs))
	for j := range bs {
		idx[bs[j].Name] = j
	}
	broken := func(format string, a ...any) error { return &chainError{fmt.Sprintf(format, a...)} }
	seen := map[string]bool{}
	chain := []int{i}
	cur := i
	for {
		b := &bs[cur]
		if err := b.Check(ctx, st); err != nil {
			if b.Broken == "" {
				return nil, err
			}
			if cur == i {
				return nil, &chainError{b.Broken}
			}
			return nil, broken("its chain member %s is broken: %s", b.Name, b.Broken)
		}
		m := b.Sentinel.Walden
		if !b.IsDelta {
			if m == nil || m.Files == nil {
				return nil, broken("its full backup %s has no file list (a walden backup of format 2 is needed)", b.Name)
			}
			if b.listed {
				if size, ok := b.sizes[m.Files.Name]; !ok || size != m.Files.StoredSize {
					return nil, broken("the file list %s of its full backup %s is missing or of the wrong size", m.Files.Name, b.Name)
				}
			}
			// reverse: oldest first
			for l, r := 0, len(chain)-1; l < r; l, r = l+1, r-1 {
				chain[l], chain[r] = chain[r], chain[l]
			}
			return chain, nil
		}
		seen[b.Name] = true
		d := m.Delta
		who := "its parent"
		if cur != i {
			who = "the parent of its chain member " + b.Name + ","
		}
		j, ok := idx[d.Parent]
		if !ok {
			return nil, broken("%s %s is not in the store", who, d.Parent)
		}
		if seen[d.Parent] || len(chain) > maxChainLen {
			return nil, broken("its chain loops back to %s", d.Parent)
		}
		p := &bs[j]
		if err := p.Check(ctx, st); err != nil {
			if p.Broken == "" {
				return nil, err
			}
			return nil, broken("%s %s is broken: %s", who, p.Name, p.Broken)
		}
		if p.sentinelSum != d.ParentSentinelSHA256 {
			return nil, broken("%s %s is not the backup %s was taken from (its sentinel's SHA-256 differs from the recorded one)", who, p.Name, b.Name)
		}
		if why := linkProblem(b, p); why != "" {
			return nil, broken("%s and %s: %s", b.Name, p.Name, why)
		}
		chain = append(chain, j)
		cur = j
	}
}

// linkProblem checks that child's manifest agrees with parent's sentinel.
func linkProblem(child, parent *Backup) string {
	c, p := child.Sentinel, parent.Sentinel
	d := c.Walden.Delta
	pm := p.Walden
	if pm == nil {
		return "the parent has no walden manifest"
	}
	if c.SystemIdentifier != nil && p.SystemIdentifier != nil && *c.SystemIdentifier != *p.SystemIdentifier {
		return fmt.Sprintf("different system identifiers (%d, %d)", *c.SystemIdentifier, *p.SystemIdentifier)
	}
	if c.Walden.Timeline != 0 && pm.Timeline != 0 && c.Walden.Timeline != pm.Timeline {
		return fmt.Sprintf("different timelines (%d, %d)", c.Walden.Timeline, pm.Timeline)
	}
	if c.PgVersion != 0 && p.PgVersion != 0 && c.PgVersion/10000 != p.PgVersion/10000 {
		return fmt.Sprintf("different PostgreSQL versions (%d, %d)", c.PgVersion, p.PgVersion)
	}
	if d.ParentStartLSN != "" && pm.StartLSN != "" {
		a, err1 := ParseLSN(d.ParentStartLSN)
		b, err2 := ParseLSN(pm.StartLSN)
		if err1 != nil || err2 != nil || a != b {
			return fmt.Sprintf("the recorded parent start %s is not the parent's start %s", d.ParentStartLSN, pm.StartLSN)
		}
	}
	if pd := pm.Delta; pd != nil {
		if !parent.IsDelta {
			return "the parent is a full backup with a delta manifest"
		}
		if d.Step != pd.Step+1 {
			return fmt.Sprintf("steps %d and %d do not follow", d.Step, pd.Step)
		}
		if d.Full != pd.Full {
			return fmt.Sprintf("they name different full backups (%s, %s)", d.Full, pd.Full)
		}
	} else {
		if parent.IsDelta {
			return "the parent delta has no delta manifest"
		}
		if d.Step != 1 {
			return fmt.Sprintf("step %d follows a full backup", d.Step)
		}
		if d.Full != parent.Name {
			return fmt.Sprintf("the delta names the full backup %s", d.Full)
		}
	}
	return ""
}

// Chain is what restoring a backup reads: its members, the full backup
// first and the backup itself last, and each member's file list.
type Chain struct {
	Members []Backup
	Lists   []*FileList
}

// Newest is the backup the chain restores.
func (c *Chain) Newest() Backup { return c.Members[len(c.Members)-1] }

// LoadChain reads the whole chain of bs[i] before anything is restored:
// the checks of CheckChain, every partition listed with its recorded size,
// and every member's file list read, checked against its recorded size and
// SHA-256, and decoded. Any failure is one line naming the member and what
// is wrong.
func LoadChain(ctx context.Context, st storage.Store, crypt blob.Crypter, bs []Backup, i int, concurrency int) (*Chain, error) {
	fail := func(err error) error {
		return fmt.Errorf("backup %s cannot be restored: %v", bs[i].Name, err)
	}
	if err := CheckChain(ctx, st, bs, i); err != nil {
		return nil, fail(err)
	}
	order, err := walkChain(ctx, st, bs, i)
	if err != nil {
		return nil, fail(err)
	}
	c := &Chain{Lists: make([]*FileList, len(order))}
	pos := map[string]int{}
	for k, j := range order {
		c.Members = append(c.Members, bs[j])
		pos[bs[j].Name] = k
	}
	for _, b := range c.Members {
		for _, p := range b.Sentinel.Walden.Partitions {
			if strings.Contains(p.Name, "/") {
				return nil, fail(fmt.Errorf("%s: bad partition name %q in the sentinel", b.Name, p.Name))
			}
			size, ok := b.sizes["tar_partitions/"+p.Name]
			if b.listed && !ok {
				return nil, fail(fmt.Errorf("%s: partition %s is missing from the store", b.Name, p.Name))
			}
			if b.listed && size != p.StoredSize {
				return nil, fail(fmt.Errorf("%s: partition %s is %d bytes in the store, the backup recorded %d", b.Name, p.Name, size, p.StoredSize))
			}
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(concurrency, 1))
	for k, b := range c.Members {
		g.Go(func() error {
			fl, err := readFileList(gctx, st, crypt, b)
			if err == nil {
				err = fl.check(c.Members[:k+1], pos)
			}
			if err != nil {
				return fmt.Errorf("%s: file list %s: %w", b.Name, b.Sentinel.Walden.Files.Name, err)
			}
			c.Lists[k] = fl
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fail(err)
	}
	return c, nil
}

// readFileList reads a backup's file list and checks the stored bytes
// against the sentinel's record.
func readFileList(ctx context.Context, st storage.Store, crypt blob.Crypter, b Backup) (*FileList, error) {
	fi := b.Sentinel.Walden.Files
	key := Dir + b.Name + "/" + fi.Name
	rc, err := st.Get(ctx, key)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, errors.New("missing from the store")
		}
		return nil, err
	}
	defer rc.Close()
	hr := &hashReader{r: rc, h: sha256.New()}
	br, err := blob.NewReader(key, hr, crypt)
	if err != nil {
		return nil, err
	}
	var fl FileList
	dec := json.NewDecoder(br)
	derr := dec.Decode(&fl)
	if derr == nil {
		_, derr = io.Copy(io.Discard, br)
	}
	cerr := br.Close()
	io.Copy(io.Discard, hr)
	if got := hex.EncodeToString(hr.h.Sum(nil)); got != fi.SHA256 || hr.n != fi.StoredSize {
		return nil, fmt.Errorf("stored object is corrupt (%d bytes, SHA-256 %s; the backup recorded %d bytes, %s)", hr.n, got, fi.StoredSize, fi.SHA256)
	}
	if derr != nil {
		return nil, fmt.Errorf("not a valid file list: %v", oneLine(derr.Error()))
	}
	if cerr != nil {
		return nil, cerr
	}
	if len(fl.Files) != fi.Count {
		return nil, fmt.Errorf("holds %d files, the sentinel recorded %d", len(fl.Files), fi.Count)
	}
	return &fl, nil
}

// check validates a file list of the last of members: known kinds, paths
// inside the data directory, no duplicates, and bases that are members of
// the chain up to this one.
func (fl *FileList) check(members []Backup, pos map[string]int) error {
	if fl.FormatVersion != 1 {
		return fmt.Errorf("unknown format version %d", fl.FormatVersion)
	}
	if fl.BlockSize < 512 || fl.BlockSize > 1<<20 || fl.BlockSize&(fl.BlockSize-1) != 0 {
		return fmt.Errorf("bad block size %d", fl.BlockSize)
	}
	own := len(members) - 1
	seen := make(map[string]bool, len(fl.Files))
	for _, f := range fl.Files {
		rel, err := tarx.Clean(f.Path)
		if err != nil || rel == "." || rel != f.Path {
			return fmt.Errorf("bad path %q", f.Path)
		}
		if seen[f.Path] {
			return fmt.Errorf("%s is listed twice", f.Path)
		}
		seen[f.Path] = true
		if f.Kind != FileWhole && f.Kind != FilePages {
			return fmt.Errorf("%s: unknown kind %q", f.Path, f.Kind)
		}
		if f.Size < 0 {
			return fmt.Errorf("%s: negative size", f.Path)
		}
		k, ok := pos[f.Base]
		if !ok || k > own {
			return fmt.Errorf("%s: its base %s is not in the chain", f.Path, f.Base)
		}
		if f.Kind == FileWhole && k != own {
			return fmt.Errorf("%s is stored whole but its base is %s", f.Path, f.Base)
		}
	}
	return nil
}
