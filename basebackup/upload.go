package basebackup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"golang.org/x/time/rate"

	"github.com/walden-pg/walden/blob"
	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/walelog"
)

// uploader streams partitions into the store: producer → tar → compress →
// (encrypt) → hash and count → pipe → Put. Nothing touches the disk and
// memory stays bounded by the codec's and the backend's buffers.
type uploader struct {
	store  storage.Store
	prefix storage.Prefix
	format blob.Format
	log    *walelog.Logger
	net    *rate.Limiter // nil: unlimited
}

// errUploadEnded tells a producer that the store stopped reading.
var errUploadEnded = errors.New("upload ended")

// produceFunc writes one partition's plain tar stream into w.
type produceFunc func(w io.Writer) (expanded int64, members int, err error)

// put uploads partition n of backup name and returns what the sentinel
// records about it.
func (u *uploader) put(ctx context.Context, name string, n int, produce produceFunc) (PartitionInfo, error) {
	key := PartitionKey(name, n, u.format.Ext())
	url := u.prefix.PushURL(key)
	u.log.Info(walelog.Upload, "beginning volume compression", fmt.Sprintf("Building volume %d.", n), "")
	u.log.Info(walelog.Upload, "begin uploading a base backup volume", fmt.Sprintf("Uploading to %q.", url), "")
	start := time.Now()

	pr, pw := io.Pipe()
	sink := &hashCounter{w: pw, h: sha256.New(), ctx: ctx, net: u.net}
	type result struct {
		expanded int64
		members  int
		err      error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		defer func() { done <- r }()
		bw, err := u.format.NewWriter(sink)
		if err != nil {
			r.err = err
			pw.CloseWithError(err)
			return
		}
		r.expanded, r.members, r.err = produce(bw)
		if cerr := bw.Close(); r.err == nil {
			r.err = cerr
		}
		pw.CloseWithError(r.err) // nil: EOF for the store
	}()
	putErr := u.store.Put(ctx, key, pr, -1, storage.PutOptions{})
	pr.CloseWithError(errUploadEnded)
	r := <-done
	switch {
	case r.err != nil && !errors.Is(r.err, errUploadEnded):
		return PartitionInfo{}, fmt.Errorf("volume %d: %w", n, r.err)
	case putErr != nil:
		return PartitionInfo{}, fmt.Errorf("upload %s: %w", url, putErr)
	case r.err != nil:
		return PartitionInfo{}, fmt.Errorf("upload %s: the store stopped reading before the end", url)
	}
	u.log.Info(walelog.Upload, "finish uploading a base backup volume",
		fmt.Sprintf("Uploading to %q complete at %sKiB/s. ", url, walelog.FormatRate(sink.n, time.Since(start))), "")
	return PartitionInfo{
		Name:         PartitionName(n, u.format.Ext()),
		StoredSize:   sink.n,
		SHA256:       hex.EncodeToString(sink.h.Sum(nil)),
		ExpandedSize: r.expanded,
		Members:      r.members,
	}, nil
}

// hashCounter hashes and counts the stored bytes on their way to the store,
// at most at the network rate limit.
type hashCounter struct {
	w   io.Writer
	h   hash.Hash
	n   int64
	ctx context.Context
	net *rate.Limiter
}

func (c *hashCounter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		chunk := p
		if c.net != nil {
			if len(chunk) > c.net.Burst() {
				chunk = chunk[:c.net.Burst()]
			}
			if err := c.net.WaitN(c.ctx, len(chunk)); err != nil {
				return written, err
			}
		}
		n, err := c.w.Write(chunk)
		c.h.Write(chunk[:n])
		c.n += int64(n)
		written += n
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

// newLimiter returns a limiter of bytesPerSec, nil for no limit.
func newLimiter(bytesPerSec int64) *rate.Limiter {
	if bytesPerSec <= 0 {
		return nil
	}
	burst := int64(readChunk)
	if bytesPerSec < burst {
		burst = bytesPerSec
	}
	l := rate.NewLimiter(rate.Limit(bytesPerSec), int(burst))
	l.AllowN(time.Now(), int(burst)) // start empty: the limit holds from the first byte
	return l
}

// putObject stores data, compressed and encrypted like the partitions,
// under key, and returns the stored size and SHA-256.
func (u *uploader) putObject(ctx context.Context, key string, data []byte) (int64, string, error) {
	var buf bytes.Buffer
	sink := &hashCounter{w: &buf, h: sha256.New(), ctx: ctx, net: u.net}
	bw, err := u.format.NewWriter(sink)
	if err != nil {
		return 0, "", err
	}
	if _, err := bw.Write(data); err != nil {
		return 0, "", err
	}
	if err := bw.Close(); err != nil {
		return 0, "", err
	}
	if err := u.store.Put(ctx, key, bytes.NewReader(buf.Bytes()), int64(buf.Len()), storage.PutOptions{}); err != nil {
		return 0, "", err
	}
	return sink.n, hex.EncodeToString(sink.h.Sum(nil)), nil
}
