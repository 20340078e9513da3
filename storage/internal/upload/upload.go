// Package upload holds the source-side checks the cloud backends share:
// an object must be committed only from exactly the bytes declared, and a
// failure of the caller's data must be told apart from a failure of the
// service (no retry cures the former).
package upload

import (
	"errors"
	"fmt"
	"io"
)

// ErrTooLong reports a source with more bytes than declared.
var ErrTooLong = errors.New("the data to upload is longer than its declared size")

// SourceError marks a failure to read the caller's data.
type SourceError struct{ Err error }

func (e *SourceError) Error() string { return "reading the data to upload: " + e.Err.Error() }
func (e *SourceError) Unwrap() error { return e.Err }

// Source marks every failure of r (but io.EOF) as a *SourceError.
func Source(r io.Reader) io.Reader { return sourceReader{r} }

type sourceReader struct{ r io.Reader }

func (s sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	var se *SourceError
	if err != nil && err != io.EOF && !errors.As(err, &se) {
		err = &SourceError{err}
	}
	return n, err
}

// ExpectEOF checks that r has nothing beyond the declared size: ErrTooLong
// if it has, a *SourceError if reading it fails.
func ExpectEOF(r io.Reader) error {
	var one [1]byte
	for {
		n, err := r.Read(one[:])
		if n > 0 {
			return ErrTooLong
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return &SourceError{err}
		}
	}
}

// Exact fails unless r yields exactly size bytes, so that a short or long
// source fails before the object is committed.
func Exact(r io.Reader, size int64) io.Reader { return &exactReader{r: r, left: size, size: size} }

type exactReader struct {
	r          io.Reader
	left, size int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left == 0 {
		if err := ExpectEOF(e.r); err != nil {
			return 0, err
		}
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		return n, fmt.Errorf("the data to upload ended after %d of %d declared bytes: %w", e.size-e.left, e.size, io.ErrUnexpectedEOF)
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}
