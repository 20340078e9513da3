package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/walden-pg/walden/storage/resume"
)

// Get opens the object for reading. The reader survives broken connections:
// it re-requests the rest with "Range: bytes=<offset>-" and If-Match on the
// first response's ETag, so a replaced object is never spliced in, up to
// the store's attempt count.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	r, err := resume.Open(ctx, resume.Config{
		Open:     s.opener(s.key(key)),
		Attempts: s.attempts,
		Options:  s.opts,
		Fail: func(err error) error {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return &opError{msg: fmt.Sprintf("s3 get %s: %v", key, err), err: err}
			}
			return s.fail("get", key, err)
		},
	})
	if err != nil {
		return nil, s.fail("get", key, err)
	}
	return r, nil
}

// opener issues the GetObject for everything from offset on, pinned to the
// ETag of the first response.
func (s *Store) opener(phys string) resume.Opener {
	var etag string
	return func(ctx context.Context, off int64) (io.ReadCloser, int64, error) {
		in := &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(phys)}
		if off > 0 {
			in.Range = aws.String(fmt.Sprintf("bytes=%d-", off))
			if etag != "" {
				in.IfMatch = aws.String(etag)
			}
		}
		out, err := s.client.GetObject(ctx, in)
		if err != nil {
			return nil, 0, err
		}
		if off == 0 {
			etag = aws.ToString(out.ETag)
			size := int64(-1)
			if out.ContentLength != nil {
				size = *out.ContentLength
			}
			return out.Body, size, nil
		}
		if !strings.HasPrefix(aws.ToString(out.ContentRange), fmt.Sprintf("bytes %d-", off)) {
			// A server that ignored Range would splice the start in again.
			out.Body.Close()
			return nil, 0, fmt.Errorf("resuming at offset %d: the server answered Content-Range %q", off, aws.ToString(out.ContentRange))
		}
		return out.Body, -1, nil
	}
}
