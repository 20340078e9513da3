package verify

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"path"
	"strings"

	"github.com/walden-pg/walden/blob"
	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/wal"
)

// counter counts (and optionally hashes) the stored bytes read.
type counter struct {
	r io.Reader
	n int64
	h hash.Hash
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.h != nil {
		c.h.Write(p[:n])
	}
	return n, err
}

// segResult is what reading one WAL segment object showed.
type segResult struct {
	hdr    wal.SegmentHeader
	parsed bool
	err    string // "" when the object decodes to the segment its name says
	stored int64
}

// checkSegment decodes a whole segment object without keeping it: codec
// checks, the OpenPGP MDC at Close, and the page header and length.
func checkSegment(ctx context.Context, st storage.Store, crypt blob.Crypter, o walObject) segResult {
	var res segResult
	rc, err := st.Get(ctx, o.Key)
	if err != nil {
		res.err = "cannot be read: " + err.Error()
		return res
	}
	defer rc.Close()
	c := &counter{r: rc}
	br, err := blob.NewReader(o.Key, c, crypt)
	if err != nil {
		res.err = "does not decode: " + trimKey(err, o.Key)
		return res
	}
	sr := wal.CheckReader(o.Name, br)
	_, err = io.Copy(io.Discard, sr)
	res.hdr, res.parsed = sr.Header()
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	res.stored = c.n
	if err != nil {
		if he, ok := err.(*wal.HeaderError); ok {
			res.err = "is not the WAL its name says: " + he.Problem
		} else if ctx.Err() != nil {
			res.err = "not checked: " + ctx.Err().Error()
		} else {
			res.err = "does not decode: " + trimKey(err, o.Key)
		}
	}
	return res
}

// trimKey drops the "key: " prefix blob errors carry; the problem line
// names the object already.
func trimKey(err error, key string) string {
	return strings.TrimPrefix(err.Error(), key+": ")
}

// partResult is what reading one partition showed.
type partResult struct {
	key      string
	stored   int64
	err      string
	control  []byte // global/pg_control when this partition holds it
	label    []byte // backup_label
	version  []byte // PG_VERSION
	hasCtrl  bool
	hasLabel bool
}

// memberName normalises a tar member name to a data-directory path.
func memberName(n string) string {
	n = strings.TrimPrefix(n, "./")
	n = strings.TrimPrefix(path.Clean("/"+n), "/")
	return n
}

// checkPartitionHash reads a partition's stored bytes and compares their
// size and SHA-256 with what the manifest recorded, without decoding.
func checkPartitionHash(ctx context.Context, st storage.Store, key string, size int64, sum string) partResult {
	var res partResult
	rc, err := st.Get(ctx, key)
	if err != nil {
		res.err = missingOr(err)
		return res
	}
	defer rc.Close()
	c := &counter{r: rc, h: sha256.New()}
	buf := make([]byte, 256<<10)
	_, err = io.CopyBuffer(io.Discard, struct{ io.Reader }{c}, buf)
	res.stored = c.n
	if err != nil {
		res.err = "cannot be read: " + err.Error()
		return res
	}
	if size >= 0 && c.n != size {
		res.err = fmt.Sprintf("is %d bytes, the backup recorded %d (truncated or replaced)", c.n, size)
		return res
	}
	if got := hex.EncodeToString(c.h.Sum(nil)); sum != "" && got != sum {
		res.err = fmt.Sprintf("is corrupt: SHA-256 %s, the backup recorded %s", got, sum)
	}
	return res
}

func missingOr(err error) string {
	if storage.IsNotFound(err) {
		return "missing from the store"
	}
	return "cannot be read: " + err.Error()
}

// checkPartitionTar decodes a partition to the end of a complete tar and
// the end of its stream (codec checksums, OpenPGP MDC), keeping the few
// small members verify needs.
func checkPartitionTar(ctx context.Context, st storage.Store, crypt blob.Crypter, key string) partResult {
	var res partResult
	rc, err := st.Get(ctx, key)
	if err != nil {
		res.err = missingOr(err)
		return res
	}
	defer rc.Close()
	c := &counter{r: rc}
	br, err := blob.NewReader(key, c, crypt)
	if err != nil {
		res.err = "does not decode: " + trimKey(err, key)
		return res
	}
	err = func() error {
		tr := tar.NewReader(br)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("not a complete tar: %w", err)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var keep *[]byte
			switch memberName(h.Name) {
			case "global/pg_control":
				keep, res.hasCtrl = &res.control, true
			case "backup_label":
				keep, res.hasLabel = &res.label, true
			case "PG_VERSION":
				keep = &res.version
			}
			if keep != nil && h.Size <= 1<<20 {
				b, err := io.ReadAll(tr)
				if err != nil {
					return fmt.Errorf("not a complete tar: member %s: %w", h.Name, err)
				}
				*keep = b
				continue
			}
			if _, err := io.Copy(io.Discard, tr); err != nil {
				return fmt.Errorf("not a complete tar: member %s: %w", h.Name, err)
			}
		}
	}()
	if err == nil {
		// Past the tar end marker: codec trailer and checksums.
		_, err = io.Copy(io.Discard, br)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	res.stored = c.n
	if err != nil {
		res.err = "does not decode: " + trimKey(err, key)
	}
	return res
}
