// Package ctxio makes plain readers stop when a context ends, for copies
// (uploads, extraction) that have no other cancellation point.
package ctxio

import (
	"context"
	"io"
)

// Reader reads r until ctx ends, then fails with ctx's error.
func Reader(ctx context.Context, r io.Reader) io.Reader { return reader{ctx, r} }

type reader struct {
	ctx context.Context
	r   io.Reader
}

func (c reader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
