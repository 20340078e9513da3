// Package s3 stores objects in Amazon S3 or an S3-compatible service, the
// backend of WALE_S3_PREFIX, through aws-sdk-go-v2.
//
// Physical keys follow WAL-E (wal-e-compat.md 3.1): path_prefix + key with
// every run of '/' collapsed to one, as boto did, and no leading slash. Every
// upload asks for WALE_S3_STORAGE_CLASS and AES256 server-side encryption
// (2.3). Objects become visible whole or not at all: small objects are one
// PutObject, larger ones a multipart upload that is aborted on failure.
package s3

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/walden-pg/walden/config"
	"github.com/walden-pg/walden/internal/ctxio"
	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/storage/internal/deadline"
	"github.com/walden-pg/walden/storage/internal/trust"
	"github.com/walden-pg/walden/storage/internal/upload"
	"github.com/walden-pg/walden/storage/resume"
)

const (
	// SinglePutMax is the largest known-size object sent as one PutObject;
	// it is buffered in memory so the SDK can resend it on a retry.
	SinglePutMax = 64 << 20
	// PartSize and PartConcurrency bound a multipart upload's memory to a
	// few parts (the manager keeps PartConcurrency+1 buffers plus the first).
	PartSize        = 16 << 20
	PartConcurrency = 2

	deleteBatch  = 1000
	abortTimeout = time.Minute
)

// Option adjusts a Store; tests use it to shorten waits. The options are
// shared with the other cloud backends.
type Option = resume.Option

// WithBackoff caps the exponential backoff between attempts (default 20 s).
func WithBackoff(max time.Duration) Option { return resume.WithBackoff(max) }

// WithStallTimeout sets how long a download may receive nothing before the
// connection is given up and the rest re-requested (default 2 min). There
// is no overall timeout: large objects take as long as they take.
func WithStallTimeout(d time.Duration) Option { return resume.WithStallTimeout(d) }

// WithRequestLimits sets how long a request may wait for its answer
// (response, plus perMiB per MiB it sends) and how long an operation may
// make no progress (idle; 0 disables that bound).
func WithRequestLimits(response, perMiB, idle time.Duration) Option {
	return resume.WithRequestLimits(response, perMiB, idle)
}

var _ storage.Store = (*Store)(nil)

// Store is an S3 bucket and WAL-E path prefix.
type Store struct {
	client   *s3.Client
	uploader *manager.Uploader
	bucket   string
	prefix   string // physical form of the path prefix
	class    types.StorageClass
	attempts int
	opts     resume.Options
	secrets  []string // removed from every error message

	bucketSeen atomic.Bool // HeadBucket found the bucket once
}

var regionRE = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// New prepares a store for prefix p. It makes no network request: the SDK
// resolves credentials and connects on first use, which keeps wal-push's
// per-segment start-up cheap. retries is WALE_RETRIES, the number of
// attempts per request; below 1 means (practically) forever.
func New(ctx context.Context, p storage.Prefix, c config.S3, retries int, opts ...Option) (*Store, error) {
	o := resume.NewOptions(opts...)
	if p.Store == "" {
		return nil, errors.New("s3: the prefix names no bucket")
	}
	if c.Region == "" && c.Endpoint == "" {
		return nil, errors.New("must define one of AWS_REGION or WALE_S3_ENDPOINT")
	}
	region, endpoint, pathStyle := c.Region, "", false
	if c.Endpoint != "" {
		proto, style, hostport, err := config.ParseS3Endpoint(c.Endpoint)
		if err != nil {
			return nil, fmt.Errorf("WALE_S3_ENDPOINT: %v", err)
		}
		endpoint = proto + "://" + hostport
		pathStyle = style == "path"
		if region == "" {
			// S3-compatible services rarely care, but SigV4 needs a region.
			region = "us-east-1"
		}
	} else {
		if !regionRE.MatchString(region) {
			return nil, fmt.Errorf("Could not resolve host for AWS_REGION: AWS_REGION is set to %q", region)
		}
		// Dotted or otherwise non-DNS bucket names cannot be virtual-hosted
		// over TLS; boto used path style for them too.
		pathStyle = !virtualHostable(p.Store)
	}

	attempts := resume.Attempts(retries)
	retryer := newRetryer(attempts, o.MaxBackoff)

	load := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(region),
		// A BuildableClient, so that AWS_CA_BUNDLE can be applied to it.
		awsconfig.WithHTTPClient(newHTTPClient()),
		awsconfig.WithRetryer(func() aws.Retryer { return retryer }),
		// "auto" would ask the instance metadata service which environment
		// this is: a network round trip in New.
		awsconfig.WithDefaultsMode(aws.DefaultsModeLegacy),
		// walden prints only its own lines (design.md 8.12).
		awsconfig.WithLogger(logging.Nop{}),
		awsconfig.WithClientLogMode(0),
	}
	var secrets []string
	if c.AccessKeyID != "" {
		if c.SecretAccessKey == "" {
			return nil, errors.New("AWS Secret Key credential is required but not provided (set AWS_SECRET_ACCESS_KEY)")
		}
		load = append(load, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken)))
		secrets = append(secrets, c.AccessKeyID, c.SecretAccessKey, c.SessionToken)
	}
	// Otherwise (including --aws-instance-profile) the SDK's default chain:
	// environment, shared files, web identity, IMDSv2, all resolved lazily.
	checksum := aws.RequestChecksumCalculationWhenSupported
	if endpoint != "" {
		// Many S3-compatible services reject the SDK's default CRC32
		// trailers; send checksums only where the API requires them.
		checksum = aws.RequestChecksumCalculationWhenRequired
		load = append(load,
			awsconfig.WithRequestChecksumCalculation(checksum),
			awsconfig.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, errors.New("s3: loading AWS configuration: " + redact(err.Error(), secrets))
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		so.HTTPClient = bounded(so.HTTPClient, o)
		so.UsePathStyle = pathStyle
		so.BaseEndpoint = nil
		if endpoint != "" {
			so.BaseEndpoint = aws.String(endpoint)
		}
		// WALE_RETRIES rules, not AWS_MAX_ATTEMPTS.
		so.Retryer = retryer
		so.RetryMaxAttempts = 0
		so.DisableLogOutputChecksumValidationSkipped = true
	})
	uploader := manager.NewUploader(client, func(u *manager.Uploader) {
		u.PartSize = PartSize
		u.Concurrency = PartConcurrency
		// We abort ourselves, with a context that survives cancellation.
		u.LeavePartsOnError = true
		u.RequestChecksumCalculation = checksum
	})
	return &Store{
		client:   client,
		uploader: uploader,
		bucket:   p.Store,
		prefix:   physical(p.Path),
		class:    types.StorageClass(c.StorageClass),
		attempts: attempts,
		opts:     o,
		secrets:  secrets,
	}, nil
}

func newRetryer(attempts int, maxBackoff time.Duration) aws.Retryer {
	return retry.NewStandard(func(so *retry.StandardOptions) {
		so.MaxAttempts = attempts
		so.MaxBackoff = maxBackoff
		// The client-side retry quota would cut WALE_RETRIES short during
		// a long outage; WAL-E keeps trying, and so do we.
		so.RateLimiter = ratelimit.None
		// A refused server certificate stays refused: fail at once instead
		// of retrying until the operation's progress bound. The standard
		// checks would call it a connection error, so this one goes first.
		so.Retryables = append([]retry.IsErrorRetryable{retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
			if _, _, _, bad := deadline.CertProblem(err); bad {
				return aws.FalseTernary
			}
			return aws.UnknownTernary
		})}, so.Retryables...)
		// A response cut off while its XML is decoded is as transient as
		// one cut off before the headers.
		so.Retryables = append(so.Retryables, retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
			if errors.Is(err, io.ErrUnexpectedEOF) || deadline.IsHang(err) {
				return aws.TrueTernary
			}
			return aws.UnknownTernary
		}))
	})
}

// newHTTPClient keeps connections alive and bounds connecting, every
// request (deadline.Transport: the answer, the upload body, the response
// body) and waiting for response headers.
func newHTTPClient() *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) {
			d.Timeout = 10 * time.Second
			d.KeepAlive = 30 * time.Second
		}).
		WithTransportOptions(func(t *http.Transport) {
			if t.TLSClientConfig == nil {
				t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			}
			t.TLSHandshakeTimeout = 10 * time.Second
			// The SDK adds AWS_CA_BUNDLE to a pool that is already set, where
			// it would otherwise replace the system roots with the bundle
			// alone. Through a proxy, net/http makes the TLS connection with
			// this configuration itself: it gets the whole system store
			// (which honours SSL_CERT_FILE and SSL_CERT_DIR) now.
			if os.Getenv("HTTPS_PROXY") != "" || os.Getenv("https_proxy") != "" {
				if pool, err := x509.SystemCertPool(); err == nil {
					t.TLSClientConfig.RootCAs = pool
				}
				return
			}
			// Otherwise the bundle's pool is tried first and the system store
			// read only if it must be (trust.Dialer): reading it costs a
			// short-lived process about 30 ms.
			pool := x509.NewCertPool()
			t.TLSClientConfig.RootCAs = pool
			d := &trust.Dialer{Roots: pool, Config: t.TLSClientConfig.Clone(), Dial: t.DialContext, HandshakeTimeout: t.TLSHandshakeTimeout}
			t.DialTLSContext = d.DialTLSContext
			t.ResponseHeaderTimeout = 2 * time.Minute
			t.IdleConnTimeout = 90 * time.Second
			t.MaxIdleConnsPerHost = 64
		})
}

// bounded puts deadline.Transport in front of the configured client's
// transport.
func bounded(c aws.HTTPClient, o resume.Options) aws.HTTPClient {
	bc, ok := c.(*awshttp.BuildableClient)
	if !ok {
		return c
	}
	return &http.Client{
		Transport: &deadline.Transport{Base: bc.GetTransport(), Limits: limits(o)},
		// S3 answers a wrong region with a redirect the SDK reports.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func limits(o resume.Options) deadline.Limits {
	return deadline.Limits{Response: o.Response, PerMiB: o.PerMiB, Stall: o.StallTimeout, Idle: o.Idle}
}

// virtualHostable reports whether bucket can be addressed as
// BUCKET.s3.amazonaws.com: lower-case letters, digits and '-', 3 to 63
// characters, starting and ending with a letter or digit, and no dots.
func virtualHostable(bucket string) bool {
	if len(bucket) < 3 || len(bucket) > 63 {
		return false
	}
	for i := 0; i < len(bucket); i++ {
		c := bucket[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (c != '-' || i == 0 || i == len(bucket)-1) {
			return false
		}
	}
	return true
}

// physical collapses runs of '/' and drops a leading one, as boto did when
// it turned WAL-E's keys into object names.
func physical(k string) string {
	var b strings.Builder
	b.Grow(len(k))
	prev := true // drops a leading '/'
	for i := 0; i < len(k); i++ {
		if k[i] == '/' {
			if prev {
				continue
			}
			prev = true
		} else {
			prev = false
		}
		b.WriteByte(k[i])
	}
	return b.String()
}

func (s *Store) key(key string) string { return physical(s.prefix + key) }

// rel turns a physical key back into one relative to the prefix.
func (s *Store) rel(k string) (string, bool) {
	if !strings.HasPrefix(k, s.prefix) {
		return "", false
	}
	return k[len(s.prefix):], true
}

// Put uploads r under key. size is r's length, or -1 when unknown.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64, opts storage.PutOptions) error {
	ctx, done := deadline.Operation(ctx, s.opts.Idle)
	defer done()
	ct := opts.ContentType
	if ct == "" {
		// What boto sent for WAL and partitions (wal-e-compat.md 3.7).
		ct = "application/octet-stream"
	}
	in := &s3.PutObjectInput{
		Bucket:               aws.String(s.bucket),
		Key:                  aws.String(s.key(key)),
		ContentType:          aws.String(ct),
		ServerSideEncryption: types.ServerSideEncryptionAes256,
	}
	if s.class != "" {
		in.StorageClass = s.class
	}
	if opts.IfAbsent {
		// Conditional write: S3 refuses with 412 when the key exists.
		in.IfNoneMatch = aws.String("*")
	}
	if size >= 0 && size <= SinglePutMax {
		return s.putSingle(ctx, key, in, r, size)
	}
	return s.putMultipart(ctx, key, in, r, size)
}

// putSingle sends one PutObject from a seekable body, so that the SDK's
// retries can rewind it.
func (s *Store) putSingle(ctx context.Context, key string, in *s3.PutObjectInput, r io.Reader, size int64) error {
	var body io.ReadSeeker
	if ra, ok := r.(interface {
		io.ReaderAt
		io.Seeker
	}); ok {
		pos, err := ra.Seek(0, io.SeekCurrent)
		if err != nil {
			return s.fail("put", key, err)
		}
		end, err := ra.Seek(0, io.SeekEnd)
		if err != nil {
			return s.fail("put", key, err)
		}
		if end-pos != size {
			return s.fail("put", key, fmt.Errorf("the data to upload has %d bytes, not the %d declared", end-pos, size))
		}
		body = io.NewSectionReader(ra, pos, size)
	} else {
		bp := getBuf(int(size))
		defer putBuf(bp)
		buf := (*bp)[:size]
		if _, err := io.ReadFull(ctxio.Reader(ctx, r), buf); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return s.fail("put", key, fmt.Errorf("reading the data to upload (%d bytes declared): %w", size, err))
		}
		if err := upload.ExpectEOF(r); err != nil {
			return s.fail("put", key, err)
		}
		body = newBytesReader(buf)
	}
	in.Body = body
	in.ContentLength = aws.Int64(size)
	if _, err := s.client.PutObject(ctx, in); err != nil {
		if in.IfNoneMatch != nil && isConditionFailed(err) {
			return &opError{msg: fmt.Sprintf("s3 put %s: %v", key, storage.ErrExists), err: storage.ErrExists}
		}
		return s.fail("put", key, hung(ctx, err))
	}
	return nil
}

// putMultipart streams r through the upload manager in PartSize parts. On
// any failure the upload is aborted so that no parts linger.
func (s *Store) putMultipart(ctx context.Context, key string, in *s3.PutObjectInput, r io.Reader, size int64) error {
	body := ctxio.Reader(ctx, r)
	if size >= 0 {
		// A short or long source must fail before CompleteMultipartUpload
		// makes the object visible.
		body = upload.Exact(body, size)
	}
	// Hide any Seeker/ReaderAt so the manager buffers parts from a stream.
	in.Body = struct{ io.Reader }{body}
	// The manager copies IfNoneMatch to CompleteMultipartUpload, where S3
	// checks it for a multipart upload.
	_, err := s.uploader.Upload(ctx, in)
	if err == nil {
		return nil
	}
	out := s.fail("put", key, hung(ctx, err))
	if in.IfNoneMatch != nil && isConditionFailed(err) {
		out = &opError{msg: fmt.Sprintf("s3 put %s: %v", key, storage.ErrExists), err: storage.ErrExists}
	}
	var mu manager.MultiUploadFailure
	if errors.As(err, &mu) && mu.UploadID() != "" {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
		_, aerr := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket:   in.Bucket,
			Key:      in.Key,
			UploadId: aws.String(mu.UploadID()),
		})
		if aerr != nil && !isNoSuchUpload(aerr) {
			oe := out.(*opError)
			oe.msg += redact(fmt.Sprintf(" (and aborting multipart upload %s failed: %s)", mu.UploadID(), describe(aerr)), s.secrets)
		}
	}
	return out
}

// isConditionFailed reports S3's refusal of a conditional write: 412
// PreconditionFailed, or 409 ConditionalRequestConflict (a concurrent
// conditional write of the same key).
func isConditionFailed(err error) bool {
	var api smithy.APIError
	if errors.As(err, &api) && (api.ErrorCode() == "PreconditionFailed" || api.ErrorCode() == "ConditionalRequestConflict") {
		return true
	}
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && (re.HTTPStatusCode() == http.StatusPreconditionFailed || re.HTTPStatusCode() == http.StatusConflict)
}

// Head returns the object's size and modification time.
func (s *Store) Head(ctx context.Context, key string) (storage.Object, error) {
	ctx, done := deadline.Operation(ctx, s.opts.Idle)
	defer done()
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key(key))})
	if err != nil {
		if isNotFound(err) {
			// A HEAD answer has no body: a missing bucket looks like a
			// missing object unless the bucket is asked about.
			if berr := s.checkBucket(ctx); berr != nil {
				err = berr
			}
		}
		return storage.Object{}, s.fail("head", key, hung(ctx, err))
	}
	return storage.Object{Key: key, Size: aws.ToInt64(out.ContentLength), Modified: aws.ToTime(out.LastModified)}, nil
}

// checkBucket returns the error of a HeadBucket that finds no bucket (as
// a NoSuchBucket API error), nil otherwise; a bucket seen once is not
// asked about again.
func (s *Store) checkBucket(ctx context.Context) error {
	if s.bucketSeen.Load() {
		return nil
	}
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.bucket)})
	if err == nil {
		s.bucketSeen.Store(true)
		return nil
	}
	var nb *types.NoSuchBucket
	var nf *types.NotFound
	var re *smithyhttp.ResponseError
	if errors.As(err, &nb) || errors.As(err, &nf) || errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound {
		return &smithy.GenericAPIError{Code: "NoSuchBucket", Message: "The specified bucket does not exist"}
	}
	return nil
}

// List returns every object whose key starts with prefix, sorted by key.
func (s *Store) List(ctx context.Context, prefix string) ([]storage.Object, error) {
	ctx, done := deadline.Operation(ctx, s.opts.Idle)
	defer done()
	in := &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket)}
	if p := s.key(prefix); p != "" {
		in.Prefix = aws.String(p)
	}
	var out []storage.Object
	pages := s3.NewListObjectsV2Paginator(s.client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, s.fail("list", prefix, hung(ctx, err))
		}
		for _, o := range page.Contents {
			k, ok := s.rel(aws.ToString(o.Key))
			if !ok {
				continue
			}
			out = append(out, storage.Object{Key: k, Size: aws.ToInt64(o.Size), Modified: aws.ToTime(o.LastModified)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Delete removes the object; a missing object is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	ctx, done := deadline.Operation(ctx, s.opts.Idle)
	defer done()
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key(key))})
	if err != nil && !isNotFound(err) {
		return s.fail("delete", key, hung(ctx, err))
	}
	return nil
}

// DeleteFailure is one key DeleteMany could not delete.
type DeleteFailure struct {
	Key    string // relative to the prefix, as passed to DeleteMany
	Reason string
}

// DeleteError lists every key DeleteMany could not delete.
type DeleteError struct {
	Total    int
	Failures []DeleteFailure
}

func (e *DeleteError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "s3 delete: %d of %d objects not deleted:", len(e.Failures), e.Total)
	for i, f := range e.Failures {
		if i == 10 {
			fmt.Fprintf(&b, " ... and %d more", len(e.Failures)-i)
			break
		}
		if i > 0 {
			b.WriteByte(';')
		}
		fmt.Fprintf(&b, " %s: %s", f.Key, f.Reason)
	}
	return b.String()
}

// DeleteMany deletes keys with DeleteObjects, 1000 at a time. Keys S3 could
// not delete, and keys of batches that failed as a whole, are reported in a
// *DeleteError; missing keys are not failures.
func (s *Store) DeleteMany(ctx context.Context, keys []string) error {
	ctx, done := deadline.Operation(ctx, s.opts.Idle)
	defer done()
	derr := &DeleteError{Total: len(keys)}
	for start := 0; start < len(keys); start += deleteBatch {
		batch := keys[start:min(start+deleteBatch, len(keys))]
		ids := make([]types.ObjectIdentifier, len(batch))
		back := make(map[string]string, len(batch))
		for i, k := range batch {
			p := s.key(k)
			ids[i] = types.ObjectIdentifier{Key: aws.String(p)}
			back[p] = k
		}
		out, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(s.bucket),
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if err != nil {
			reason := s.cause(hung(ctx, err))
			for _, k := range batch {
				derr.Failures = append(derr.Failures, DeleteFailure{Key: k, Reason: reason})
			}
			if ctx.Err() != nil {
				for _, k := range keys[start+len(batch):] {
					derr.Failures = append(derr.Failures, DeleteFailure{Key: k, Reason: reason})
				}
				break
			}
			continue
		}
		for _, e := range out.Errors {
			code := aws.ToString(e.Code)
			if code == "NoSuchKey" {
				continue
			}
			k, ok := back[aws.ToString(e.Key)]
			if !ok {
				k = aws.ToString(e.Key)
			}
			reason := code
			if m := aws.ToString(e.Message); m != "" {
				reason += ": " + m
			}
			derr.Failures = append(derr.Failures, DeleteFailure{Key: k, Reason: redact(reason, s.secrets)})
		}
	}
	if len(derr.Failures) > 0 {
		return derr
	}
	return nil
}

// opError is the one-line error every operation returns. msg is already
// formatted and scrubbed of credentials; err is kept for errors.Is/As.
type opError struct {
	msg string
	err error
}

func (e *opError) Error() string { return e.msg }
func (e *opError) Unwrap() error { return e.err }

// fail turns an SDK error into "s3 <op> <key>: <cause>", or
// "s3 <op> <key>: giving up after N attempts: <cause>" once retries ran out.
// A missing object wraps storage.ErrNotFound.
func (s *Store) fail(op, key string, err error) error {
	if isNotFound(err) && op != "delete" && op != "list" {
		return &opError{msg: fmt.Sprintf("s3 %s %s: %v", op, key, storage.ErrNotFound), err: storage.ErrNotFound}
	}
	if isNoSuchBucket(err) {
		return &opError{msg: redact(fmt.Sprintf("s3 %s %s: bucket %q does not exist", op, key, s.bucket), s.secrets), err: err}
	}
	return &opError{msg: redact(fmt.Sprintf("s3 %s %s: %s", op, key, s.cause(err)), s.secrets), err: err}
}

// hung replaces err by the *deadline.HangError that ended ctx, if one did:
// the SDK reports only that its context was cancelled.
func hung(ctx context.Context, err error) error {
	if h := deadline.Cause(ctx); h != nil {
		return h
	}
	return err
}

func isNoSuchBucket(err error) bool {
	var nb *types.NoSuchBucket
	var api smithy.APIError
	return errors.As(err, &nb) || errors.As(err, &api) && api.ErrorCode() == "NoSuchBucket"
}

// cause describes err in one line, prefixed with the attempt count when the
// retryer gave up.
func (s *Store) cause(err error) string {
	var mae *retry.MaxAttemptsError
	if errors.As(err, &mae) {
		return redact(fmt.Sprintf("giving up after %d attempts: %s", mae.Attempt, describe(mae.Err)), s.secrets)
	}
	var gu *resume.GaveUp
	if errors.As(err, &gu) {
		return redact(fmt.Sprintf("giving up after %d attempts: %s", gu.Attempts, describe(gu.Err)), s.secrets)
	}
	return redact(describe(err), s.secrets)
}

func describe(err error) string {
	if host, cause, unknownCA, ok := deadline.CertProblem(err); ok {
		d := fmt.Sprintf("TLS certificate of %s refused: %s", host, cause)
		if unknownCA {
			d += "; set AWS_CA_BUNDLE (or SSL_CERT_FILE) to the CA file"
		}
		return d
	}
	var hang *deadline.HangError
	if errors.As(err, &hang) {
		return hang.Error()
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		d := api.ErrorCode()
		if m := api.ErrorMessage(); m != "" {
			d += ": " + m
		}
		var re *smithyhttp.ResponseError
		if errors.As(err, &re) {
			d += fmt.Sprintf(" (HTTP %d)", re.HTTPStatusCode())
		}
		return d
	}
	var se *smithyhttp.RequestSendError
	if errors.As(err, &se) {
		return "request failed: " + se.Err.Error()
	}
	var oe *smithy.OperationError
	if errors.As(err, &oe) {
		return oe.Err.Error()
	}
	return err.Error()
}

// redact removes credentials and line breaks from an error message.
func redact(msg string, secrets []string) string {
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	return strings.Join(strings.Fields(strings.ReplaceAll(msg, "\n", " ")), " ")
}

func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return true
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return true
		case "NoSuchBucket":
			// A missing bucket is a configuration error, not a missing
			// segment: wal-fetch must not report "not found" for it.
			return false
		}
	}
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound && (api == nil || api.ErrorCode() != "NoSuchBucket")
}

func isNoSuchUpload(err error) bool {
	var nsu *types.NoSuchUpload
	if errors.As(err, &nsu) {
		return true
	}
	var api smithy.APIError
	return errors.As(err, &api) && api.ErrorCode() == "NoSuchUpload"
}

// bufPool recycles single-put buffers across uploads (wal-push parallelism
// uploads many segments of similar size).
var bufPool sync.Pool

func getBuf(n int) *[]byte {
	if bp, ok := bufPool.Get().(*[]byte); ok && cap(*bp) >= n {
		return bp
	}
	b := make([]byte, n)
	return &b
}

func putBuf(bp *[]byte) { bufPool.Put(bp) }

// newBytesReader is a seekable body over a buffer.
func newBytesReader(b []byte) io.ReadSeeker { return io.NewSectionReader(bytesAt(b), 0, int64(len(b))) }

type bytesAt []byte

func (b bytesAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
