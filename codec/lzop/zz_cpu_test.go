package lzop

import (
	"bytes"
	"io"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
)

func threadCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(1, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestZZCPU(t *testing.T) {
	data, _ := os.ReadFile("/tmp/wal16.bin")
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var out bytes.Buffer
	best := time.Hour
	for i := 0; i < 15; i++ {
		out.Reset()
		c0 := threadCPU()
		w := NewWriter(&out)
		w.Write(data)
		w.Close()
		best = min(best, threadCPU()-c0)
	}
	t.Logf("compress: best %v = %.0f MB/s, size %.2f%%", best, float64(len(data))/best.Seconds()/1e6, 100*float64(out.Len())/float64(len(data)))
	stream := out.Bytes()
	best = time.Hour
	for i := 0; i < 15; i++ {
		c0 := threadCPU()
		io.Copy(io.Discard, NewReader(bytes.NewReader(stream)))
		best = min(best, threadCPU()-c0)
	}
	t.Logf("decompress: best %v = %.0f MB/s", best, float64(len(data))/best.Seconds()/1e6)
}
