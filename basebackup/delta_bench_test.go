package basebackup

import (
	"context"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/walden-pg/walden/blob"
	"github.com/walden-pg/walden/codec"
	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/storage/file"
)

// BenchmarkDeltaChainRestoreVsFull restores the same data twice: from a
// full backup, and from a chain of a full backup and two deltas that each
// changed 5% of the pages. It reports both times and their ratio
// (go test ./basebackup/ -run '^$' -bench DeltaChainRestore -benchtime 3x).
func BenchmarkDeltaChainRestoreVsFull(b *testing.B) {
	const files, fileSize = 24, 8 << 20 // 192 MiB of relation segments
	r := rand.New(rand.NewSource(1))
	s0 := simState{"PG_VERSION": []byte("15\n"), "global/pg_control": randBytes(r, 512)}
	// Compressible pages, as table pages mostly are: 1/4 random, 3/4 zero.
	page := func() []byte {
		p := make([]byte, testBlk)
		r.Read(p[:testBlk/4])
		return p
	}
	for i := 0; i < files; i++ {
		d := make([]byte, 0, fileSize)
		for len(d) < fileSize {
			d = append(d, page()...)
		}
		s0["base/5/"+strconv.Itoa(16384+i)] = d
	}
	change := func(s simState) simState {
		n := simState{}
		for k, v := range s {
			n[k] = v
		}
		n["global/pg_control"] = randBytes(r, 512)
		for i := 0; i < files; i++ {
			p := "base/5/" + strconv.Itoa(16384+i)
			d := append([]byte(nil), n[p]...)
			for j := 0; j < fileSize/testBlk/20; j++ {
				copy(d[r.Intn(fileSize/testBlk)*testBlk:], page())
			}
			n[p] = d
		}
		return n
	}
	s1 := change(s0)
	s2 := change(s1)

	dir := b.TempDir()
	st := file.New(dir)
	prefix, _ := storage.ParsePrefix("file://localhost" + dir)
	w := &chainWriter{t: b, st: st, dir: dir, format: blob.Format{Codec: codec.LZ4{}}, rng: rand.New(rand.NewSource(2)), parts: 8, sysid: 1, tli: 1}
	full := w.push(s0, nil)
	d1 := w.push(s1, full)
	d2 := w.push(s2, d1)
	w.prev = nil
	alone := w.push(s2, nil) // the same data as d2, as one full backup

	stored := func(name string) int64 {
		var n int64
		filepath.Walk(filepath.Join(dir, Dir, name), func(_ string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				n += fi.Size()
			}
			return nil
		})
		return n
	}
	b.Logf("stored: full %d, delta 1 %d, delta 2 %d, full of the same data %d bytes", stored(full.name), stored(d1.name), stored(d2.name), stored(alone.name))
	log, _ := testLogger()
	// CPU seconds of this process, less disturbed by other load than the
	// elapsed time.
	cpu := func() float64 {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	}
	cpuOf := map[string]float64{}
	restore := func(name string) time.Duration {
		target := filepath.Join(b.TempDir(), "pgdata")
		start, c0 := time.Now(), cpu()
		if _, err := Fetch(context.Background(), FetchOptions{Store: st, Prefix: prefix, Log: log, PGData: target, Backup: name, Concurrency: 4}); err != nil {
			b.Fatal(err)
		}
		el := time.Since(start)
		cpuOf[name] += cpu() - c0
		os.RemoveAll(target)
		return el
	}
	var tFull, tChain []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Alternate, so that cache and disk state favour neither.
		if i%2 == 0 {
			tFull = append(tFull, restore(alone.name).Seconds())
			tChain = append(tChain, restore(d2.name).Seconds())
		} else {
			tChain = append(tChain, restore(d2.name).Seconds())
			tFull = append(tFull, restore(alone.name).Seconds())
		}
	}
	// Medians: the machine's other load makes single runs noisy.
	sort.Float64s(tFull)
	sort.Float64s(tChain)
	mf, mc := tFull[len(tFull)/2], tChain[len(tChain)/2]
	b.ReportMetric(mf, "s/full-restore")
	b.ReportMetric(mc, "s/chain-restore")
	b.ReportMetric(mc/mf, "chain/full")
	b.ReportMetric(cpuOf[d2.name]/cpuOf[alone.name], "chain/full-cpu")
}
