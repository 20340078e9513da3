package basebackup

import "io"

// ByteProgress receives a restore's progress: the expected number of bytes
// once the backup is known, then the bytes extracted as they stream.
// *progress.Bar implements it.
type ByteProgress interface {
	SetTotal(n int64)
	Add(n int64)
}

// countingReader reports every byte read through it to p.
type countingReader struct {
	r io.Reader
	p ByteProgress
}

func (c countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if n > 0 {
		c.p.Add(int64(n))
	}
	return n, err
}

// withProgress counts r's bytes into p, when there is one.
func withProgress(r io.Reader, p ByteProgress) io.Reader {
	if p == nil {
		return r
	}
	return countingReader{r: r, p: p}
}
