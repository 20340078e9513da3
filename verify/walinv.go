package verify

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/walden-pg/walden/basebackup"
	"github.com/walden-pg/walden/blob"
	"github.com/walden-pg/walden/codec"
	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/wal"
)

// walObject is one stored WAL file.
type walObject struct {
	Key      string
	Name     string // the WAL file name without codec extension
	Size     int64
	Modified time.Time
}

// inventory is the listing of wal_005/ sorted into what verify needs.
type inventory struct {
	segs      map[string]walObject // plain segment name -> object
	histories map[uint32]walObject
	byTLI     map[uint32][]uint64 // segment numbers present per timeline, sorted
	segSize   uint64
}

func stripExt(name string) string {
	for _, c := range codec.All {
		if e := c.Ext(); e != "" && strings.HasSuffix(name, e) {
			return strings.TrimSuffix(name, e)
		}
	}
	return name
}

func listWAL(ctx context.Context, st storage.Store) (*inventory, error) {
	objs, err := st.List(ctx, wal.Dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", wal.Dir, err)
	}
	inv := &inventory{segs: map[string]walObject{}, histories: map[uint32]walObject{}, byTLI: map[uint32][]uint64{}, segSize: basebackup.DefaultSegmentSize}
	for _, o := range objs {
		rest := strings.TrimPrefix(o.Key, wal.Dir)
		if strings.Contains(rest, "/") {
			continue
		}
		name := stripExt(rest)
		wo := walObject{Key: o.Key, Name: name, Size: o.Size, Modified: o.Modified}
		switch wal.Classify(name) {
		case wal.KindSegment:
			if _, dup := inv.segs[name]; !dup {
				inv.segs[name] = wo
			}
		case wal.KindHistory:
			tli, _ := strconv.ParseUint(name[:8], 16, 32)
			inv.histories[uint32(tli)] = wo
		}
	}
	return inv, nil
}

// index fills byTLI once the segment size is known.
func (inv *inventory) index() {
	inv.byTLI = map[uint32][]uint64{}
	for name := range inv.segs {
		s, _ := wal.ParseSegment(name)
		inv.byTLI[s.TLI] = append(inv.byTLI[s.TLI], inv.segno(s))
	}
	for _, l := range inv.byTLI {
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	}
}

func (inv *inventory) perID() uint64 { return (1 << 32) / inv.segSize }

func (inv *inventory) segno(s wal.Segment) uint64 {
	return uint64(s.Log)*inv.perID() + uint64(s.Seg)
}

// name is the segment file name of segno on tli.
func (inv *inventory) name(tli uint32, segno uint64) string {
	return fmt.Sprintf("%08X%08X%08X", tli, segno/inv.perID(), segno%inv.perID())
}

// segnoOf parses a segment name into its number.
func (inv *inventory) segnoOf(name string) (uint32, uint64, bool) {
	s, err := wal.ParseSegment(name)
	if err != nil {
		return 0, 0, false
	}
	return s.TLI, inv.segno(s), true
}

// histEntry is one line of a timeline history file: the parent timeline
// and the WAL position where the child branched off it.
type histEntry struct {
	TLI    uint32
	Switch uint64
}

// parseHistory reads "parentTLI<TAB>X/X<TAB>reason" lines.
func parseHistory(b []byte) ([]histEntry, error) {
	var out []histEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return nil, fmt.Errorf("history line %q has no switch point", line)
		}
		tli, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("history line %q: bad timeline", line)
		}
		lsn, err := basebackup.ParseLSN(f[1])
		if err != nil {
			return nil, fmt.Errorf("history line %q: %v", line, err)
		}
		out = append(out, histEntry{TLI: uint32(tli), Switch: uint64(lsn)})
	}
	return out, nil
}

// readAll decodes a small object whole (history files, sentinels).
func readAll(ctx context.Context, st storage.Store, key string, crypt blob.Crypter, limit int64) ([]byte, error) {
	rc, err := st.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	br, err := blob.NewReader(key, rc, crypt)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(br, limit))
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return b, err
}

// step is one timeline of a recovery path and the first segment recovery
// reads from it.
type step struct {
	TLI   uint32
	Begin uint64 // segment number
}

// path is the timelines recovery from a backup on tli follows with
// recovery_target_timeline=latest, as PostgreSQL finds them: the highest
// timeline reachable by probing tli+1, tli+2, ... for history files, if it
// descends from tli.
func (inv *inventory) path(tli uint32, hist map[uint32][]histEntry) []step {
	newest := tli
	for probe := tli + 1; ; probe++ {
		if _, ok := hist[probe]; !ok {
			break
		}
		newest = probe
	}
	for ; newest > tli; newest-- {
		if h, ok := hist[newest]; ok && descends(h, tli) {
			break
		}
	}
	if newest == tli {
		return []step{{TLI: tli}}
	}
	var out []step
	var begin uint64
	for _, e := range hist[newest] {
		if e.TLI >= tli {
			out = append(out, step{TLI: e.TLI, Begin: begin})
		}
		begin = e.Switch / inv.segSize
	}
	return append(out, step{TLI: newest, Begin: begin})
}

func descends(h []histEntry, tli uint32) bool {
	for _, e := range h {
		if e.TLI == tli {
			return true
		}
	}
	return false
}

// expected is the segment name recovery asks for at segno: the newest
// timeline of the path that had begun by then.
func (inv *inventory) expected(p []step, segno uint64) string {
	tli := p[0].TLI
	for _, s := range p {
		if s.Begin <= segno {
			tli = s.TLI
		}
	}
	return inv.name(tli, segno)
}

// newestOnPath is the highest segment number archived under the name the
// path expects for it.
func (inv *inventory) newestOnPath(p []step) (uint64, bool) {
	var best uint64
	found := false
	for i, s := range p {
		segs := inv.byTLI[s.TLI]
		for j := len(segs) - 1; j >= 0; j-- {
			n := segs[j]
			if n < s.Begin {
				break
			}
			if i+1 < len(p) && n >= p[i+1].Begin {
				continue // replaced by the child timeline from here
			}
			if !found || n > best {
				best, found = n, true
			}
			break
		}
	}
	return best, found
}
