package agent

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/walden-pg/walden/wal"
)

// Identity tells one WAL file from another under the same name: PostgreSQL
// recycles segment files by renaming them, so a name alone could point at
// different content later.
type Identity struct {
	Dev, Ino uint64
	Size     int64
	MTime    int64 // nanoseconds
}

// IdentityOf is the identity of the file fi describes.
func IdentityOf(fi os.FileInfo) Identity {
	id := Identity{Size: fi.Size(), MTime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.Dev, id.Ino = uint64(st.Dev), st.Ino
	}
	return id
}

type paState int

const (
	paQueued paState = iota
	paInFlight
	paDone    // durably stored, for this identity
	paFailed  // retried after retryAt
	paForeign // not this cluster's: left to archive_command
)

type paRecord struct {
	id      Identity
	st      paState
	done    chan struct{} // closed when an in-flight upload ends
	fails   int
	retryAt time.Time
	seq     uint64 // scan generation that last changed the record
}

// PushAheadOptions configure push-ahead archiving.
type PushAheadOptions struct {
	PGData  string
	Workers int // parallel uploads (default 1)
	// Queue bounds how many segments wait for a worker; Records bounds
	// how many segments are remembered at all (default 8192).
	Queue, Records int
	// Upload archives the segment at path, with wal-push's checks and log
	// lines, without touching its archive status.
	Upload func(ctx context.Context, path string) error
	// Failed hears of an upload that failed (it is retried).
	Failed                 func(name string, err error)
	MinBackoff, MaxBackoff time.Duration
	Poll                   time.Duration // fallback rescan interval (default 1s)
	Now                    func() time.Time
}

// PushAhead uploads segments as soon as their .ready files appear, and
// remembers which are durably stored so that archive_command, asking the
// agent, is answered at once. It never renames archive status files:
// PostgreSQL does that when archive_command succeeds.
type PushAhead struct {
	o      PushAheadOptions
	walDir string
	kick   chan struct{}
	queue  chan string

	mu      sync.Mutex
	gen     uint64 // bumped before each listing
	recs    map[string]*paRecord
	sysid   uint64 // from pg_control; 0 until read
	foreign map[string]bool

	uploaded, failed prometheus.Counter
}

// NewPushAhead prepares push-ahead archiving of o.PGData's pg_wal.
func NewPushAhead(o PushAheadOptions) *PushAhead {
	if o.Workers < 1 {
		o.Workers = 1
	}
	if o.Queue < 1 {
		o.Queue = 4 * o.Workers
	}
	if o.Records <= 0 {
		o.Records = 8192
	}
	if o.Records < o.Queue+o.Workers {
		o.Records = o.Queue + o.Workers
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = time.Minute
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &PushAhead{o: o, walDir: filepath.Join(o.PGData, "pg_wal"),
		kick: make(chan struct{}, 1), queue: make(chan string, o.Queue),
		recs: map[string]*paRecord{}, foreign: map[string]bool{},
		uploaded: prometheus.NewCounter(prometheus.CounterOpts{Name: "walden_wal_pushahead_uploaded_total", Help: "WAL segments the agent archived ahead of archive_command."}),
		failed:   prometheus.NewCounter(prometheus.CounterOpts{Name: "walden_wal_pushahead_failed_total", Help: "Push-ahead uploads that failed (each is retried)."}),
	}
}

// WALDir is the directory watched.
func (p *PushAhead) WALDir() string { return p.walDir }

func (p *PushAhead) register(reg *prometheus.Registry) {
	count := func(s paState) func() float64 {
		return func() float64 { return float64(p.count(s)) }
	}
	reg.MustRegister(p.uploaded, p.failed,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "walden_wal_pushahead_queued", Help: "WAL segments waiting for a push-ahead worker."}, count(paQueued)),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "walden_wal_pushahead_in_flight", Help: "WAL segments being uploaded by the agent."}, count(paInFlight)),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "walden_archive_oldest_ready_age_seconds", Help: "Age of the oldest .ready file in pg_wal/archive_status; 0 when none waits, -1 when unreadable."},
			func() float64 {
				d, err := ArchiveLag(p.o.PGData, p.o.Now())
				if err != nil {
					return -1
				}
				return d.Seconds()
			}))
}

func (p *PushAhead) count(s paState) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.recs {
		if r.st == s {
			n++
		}
	}
	return n
}

// Run watches archive_status and uploads until ctx ends, then waits for
// the workers.
func (p *PushAhead) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := 0; i < p.o.Workers; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); p.work(ctx) }()
	}
	stop := watch(filepath.Join(p.walDir, "archive_status"), p.Kick)
	defer stop()
	t := time.NewTicker(p.o.Poll)
	defer t.Stop()
	for {
		p.scan()
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-t.C:
		case <-p.kick:
		}
	}
}

// Kick asks for a rescan now.
func (p *PushAhead) Kick() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// readySegments lists the segments whose .ready files wait, oldest first.
func (p *PushAhead) readySegments() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(p.walDir, "archive_status"))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		n, ok := strings.CutSuffix(e.Name(), ".ready")
		if ok && wal.Classify(n) == wal.KindSegment {
			names = append(names, n)
		}
	}
	// Within a timeline the names sort in WAL order.
	sort.Strings(names)
	return names, nil
}

func (p *PushAhead) scan() {
	p.mu.Lock()
	p.gen++
	gen := p.gen
	p.mu.Unlock()
	names, err := p.readySegments()
	if err != nil {
		return
	}
	now := p.o.Now()
	ready := make(map[string]bool, len(names))
	for _, n := range names {
		ready[n] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// Records of segments PostgreSQL has marked done are no longer asked
	// about; dropping them keeps memory bounded by the .ready backlog.
	// A record changed since the listing began may be of a .ready file
	// the listing missed.
	for n, r := range p.recs {
		if !ready[n] && r.seq < gen && (r.st == paDone || r.st == paFailed || r.st == paForeign) {
			delete(p.recs, n)
		}
	}
	for _, n := range names {
		if len(p.queue) >= cap(p.queue) || len(p.recs) >= p.o.Records {
			return
		}
		r := p.recs[n]
		switch {
		case r == nil:
		case r.st == paFailed && !now.Before(r.retryAt):
		case r.st == paDone:
			// A done record under a .ready name whose file changed is
			// another segment: upload it too.
			if fi, err := os.Stat(filepath.Join(p.walDir, n)); err == nil && IdentityOf(fi) != r.id {
				break
			}
			continue
		default:
			continue
		}
		fi, err := os.Stat(filepath.Join(p.walDir, n))
		if err != nil {
			continue
		}
		if r == nil {
			r = &paRecord{}
			p.recs[n] = r
		}
		r.id, r.st, r.seq = IdentityOf(fi), paQueued, p.gen
		p.queue <- n // room checked above; only scan sends, under mu
	}
}

func (p *PushAhead) work(ctx context.Context) {
	for {
		var n string
		select {
		case <-ctx.Done():
			return
		case n = <-p.queue:
		}
		p.mu.Lock()
		r := p.recs[n]
		if r == nil || r.st != paQueued {
			// archive_command got to it first.
			p.mu.Unlock()
			continue
		}
		r.st, r.done = paInFlight, make(chan struct{})
		id := r.id
		p.mu.Unlock()
		err := p.upload(ctx, n, id)
		p.mu.Lock()
		r.seq = p.gen
		switch {
		case err == nil:
			r.st, r.fails = paDone, 0
			p.uploaded.Inc()
		case errors.Is(err, errForeign):
			r.st = paForeign
		case errors.Is(err, errChanged) || ctx.Err() != nil:
			delete(p.recs, n)
		default:
			r.st = paFailed
			r.fails++
			r.retryAt = p.o.Now().Add(p.backoff(r.fails))
			p.failed.Inc()
		}
		close(r.done)
		p.mu.Unlock()
		if err != nil && ctx.Err() == nil && !errors.Is(err, errChanged) && p.o.Failed != nil {
			p.o.Failed(n, err)
		}
	}
}

func (p *PushAhead) backoff(fails int) time.Duration {
	d := p.o.MinBackoff
	for i := 1; i < fails && d < p.o.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, p.o.MaxBackoff)
}

var (
	errChanged = errors.New("the file changed during the upload")
	errForeign = errors.New("the segment belongs to another cluster")
)

// upload archives one segment if it is still the file identified by id
// and belongs to this cluster, and tells whether it still is afterwards.
func (p *PushAhead) upload(ctx context.Context, name string, id Identity) error {
	path := filepath.Join(p.walDir, name)
	if err := p.sameFile(path, id); err != nil {
		return err
	}
	if err := p.checkSystemID(path); err != nil {
		return err
	}
	if err := p.o.Upload(ctx, path); err != nil {
		return err
	}
	return p.sameFile(path, id)
}

func (p *PushAhead) sameFile(path string, id Identity) error {
	fi, err := os.Stat(path)
	if err != nil || IdentityOf(fi) != id {
		return errChanged
	}
	return nil
}

// checkSystemID compares the segment's long page header with pg_control,
// so that a file from another cluster dropped into pg_wal is never pushed
// under this cluster's prefix by the agent.
func (p *PushAhead) checkSystemID(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return errChanged
	}
	defer f.Close()
	b := make([]byte, 40)
	if _, err := io.ReadFull(f, b); err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	h, err := wal.ParseSegmentHeader(b)
	if err != nil {
		// wal-push's own checks report it, with their words.
		return nil
	}
	sysid, err := p.systemID()
	if err != nil {
		return err
	}
	if h.SysID != sysid {
		return fmt.Errorf("%w: system identifier %d, pg_control has %d", errForeign, h.SysID, sysid)
	}
	return nil
}

func (p *PushAhead) systemID() (uint64, error) {
	p.mu.Lock()
	id := p.sysid
	p.mu.Unlock()
	if id != 0 {
		return id, nil
	}
	f, err := os.Open(filepath.Join(p.o.PGData, "global", "pg_control"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var b [8]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return 0, fmt.Errorf("reading pg_control: %w", err)
	}
	id = binary.LittleEndian.Uint64(b[:])
	p.mu.Lock()
	p.sysid = id
	p.mu.Unlock()
	return id, nil
}

// Claim is archive_command asking about the segment at path, in WALDir,
// whose file has identity id. durable is true when that file is already stored. Otherwise
// the caller archives it itself and must call release with the outcome;
// meanwhile the workers leave it alone. A segment in flight is waited for.
func (p *PushAhead) Claim(ctx context.Context, path string, id Identity) (durable bool, release func(error), err error) {
	name := filepath.Base(path)
	for {
		p.mu.Lock()
		r := p.recs[name]
		if r != nil && r.id == id {
			switch r.st {
			case paDone:
				p.mu.Unlock()
				return true, nil, nil
			case paInFlight:
				ch := r.done
				p.mu.Unlock()
				select {
				case <-ch:
					continue
				case <-ctx.Done():
					return false, nil, ctx.Err()
				}
			}
		}
		if r != nil && r.st == paInFlight {
			// Another file under the name is being uploaded: let that end.
			ch := r.done
			p.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return false, nil, ctx.Err()
			}
		}
		nr := &paRecord{id: id, st: paInFlight, done: make(chan struct{}), seq: p.gen}
		p.recs[name] = nr
		p.mu.Unlock()
		return false, func(err error) {
			same := err == nil && p.sameFile(path, id) == nil
			p.mu.Lock()
			defer p.mu.Unlock()
			nr.seq = p.gen
			if same {
				nr.st = paDone
			} else if p.recs[name] == nr {
				// Failed (archive_command reports it; the workers retry it
				// later), or the file changed under the upload.
				delete(p.recs, name)
			}
			close(nr.done)
		}, nil
	}
}
