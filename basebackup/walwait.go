package basebackup

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/walelog"
)

// DefaultWALTimeout is how long backup-push waits, after stopping the
// backup, for its WAL to be archived and to appear in the store
// (WALDEN_BACKUP_WAL_TIMEOUT).
const DefaultWALTimeout = 10 * time.Minute

// walPollEvery is how often the store is listed while waiting.
var walPollEvery = time.Second

// segRange is the WAL a backup needs: every segment number from first to
// last, on one of the timelines minTLI..maxTLI (a standby may change
// timeline while the backup runs).
type segRange struct {
	first, last    uint64
	minTLI, maxTLI uint32
	segSize        uint64
}

func newSegRange(startFile, stopFile string, segSize uint64) (segRange, error) {
	if segSize == 0 {
		segSize = DefaultSegmentSize
	}
	a, okA := parseSegName(startFile, segSize)
	b, okB := parseSegName(stopFile, segSize)
	if !okA || !okB {
		return segRange{}, fmt.Errorf("cannot read WAL file names %q and %q", startFile, stopFile)
	}
	r := segRange{first: a.n, last: b.n, minTLI: a.tli, maxTLI: b.tli, segSize: segSize}
	if r.last < r.first {
		r.last = r.first
	}
	if r.maxTLI < r.minTLI {
		r.minTLI, r.maxTLI = r.maxTLI, r.minTLI
	}
	return r, nil
}

type segID struct {
	tli uint32
	n   uint64
}

func parseSegName(name string, segSize uint64) (segID, bool) {
	tli, n, ok := parseSegKey(WALDir+name, segSize)
	return segID{tli, n}, ok
}

// missing lists the range's segments the store lacks on every allowed
// timeline, listing one "TTTTTTTTLLLLLLLL" prefix per timeline and log.
func (r segRange) missing(ctx context.Context, st storage.Store) ([]uint64, error) {
	perID := uint64(0x100000000) / r.segSize
	have := map[uint64]bool{}
	for tli := r.minTLI; tli <= r.maxTLI; tli++ {
		for log := r.first / perID; log <= r.last/perID; log++ {
			objs, err := st.List(ctx, WALDir+fmt.Sprintf("%08X%08X", tli, log))
			if err != nil {
				return nil, err
			}
			for _, o := range objs {
				if t, n, ok := parseSegKey(o.Key, r.segSize); ok && t == tli {
					have[n] = true
				}
			}
		}
	}
	var out []uint64
	for n := r.first; n <= r.last; n++ {
		if !have[n] {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// waitWALInStore waits until the store holds every segment of r, at most
// timeout: a backup whose WAL did not reach the store cannot be restored,
// so it must not get a sentinel.
func waitWALInStore(ctx context.Context, st storage.Store, prefix storage.Prefix, r segRange, timeout time.Duration, log *walelog.Logger) error {
	if timeout <= 0 {
		timeout = DefaultWALTimeout
	}
	deadline := time.Now().Add(timeout)
	said := false
	for {
		miss, err := r.missing(ctx, st)
		if err != nil {
			return fmt.Errorf("listing the backup's WAL in the store: %w", err)
		}
		if len(miss) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			first := segName(r.maxTLI, miss[0], r.segSize)
			return &walelog.UserError{
				Msg: "the WAL this backup needs is not in the store",
				Detail: fmt.Sprintf("%d of the segments %s to %s are missing from %s after waiting %s, the first %s; the backup cannot be restored, so no sentinel was written.",
					len(miss), segName(r.minTLI, r.first, r.segSize), segName(r.maxTLI, r.last, r.segSize), prefix.URL(WALDir), timeout, first),
				Hint: "Make archive_command run wal-push into this same store (archive_mode = on), or raise WALDEN_BACKUP_WAL_TIMEOUT if the archiver is only slow.",
			}
		}
		if !said && log != nil {
			log.Info(walelog.WaldenName, "waiting for the backup's WAL to reach the store",
				fmt.Sprintf("%d segment(s) from %s on are not archived yet; waiting up to %s.", len(miss), segName(r.maxTLI, miss[0], r.segSize), timeout), "")
			said = true
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(walPollEvery):
		}
	}
}
