package s3

import (
	"testing"

	"github.com/walden-pg/walden/storage/internal/faketest"
)

func TestMissingBucketIsNamedOnEveryPath(t *testing.T) {
	f := newFake(t)
	faketest.CheckMissingBucket(t, f.store(t, "s3://no-such-bucket/p", 2), "no-such-bucket", PartSize+1)
}
