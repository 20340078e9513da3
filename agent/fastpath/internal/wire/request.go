package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// The request frame's payload: the protocol version as a uvarint, then
// every field of Request in declaration order. Strings are a uvarint
// length and the bytes, so paths that are not UTF-8 cross unchanged.
// Slices and maps are a uvarint of 0 for nil, else 1 + their length, so
// that nil and empty stay distinct (WAL-E's empty WALE_LOG_DESTINATION
// means "nowhere", unset means the defaults). Map entries go sorted by key.
//
// Protocol version 3 and earlier sent JSON; such a request starts with '{'.

// AppendRequest appends r's encoding to b; its Version is written as
// given.
func AppendRequest(b []byte, r *Request) []byte {
	b = binary.AppendUvarint(b, uint64(r.Version))
	b = appendString(b, r.Fingerprint)
	b = appendString(b, r.Command)
	b = appendStrings(b, r.Positionals)
	b = appendCount(b, r.Options == nil, len(r.Options))
	for _, k := range sortedKeys(r.Options) {
		b = appendString(appendString(b, k), r.Options[k])
	}
	b = appendCount(b, r.Flags == nil, len(r.Flags))
	for _, k := range sortedKeys(r.Flags) {
		b = appendBool(appendString(b, k), r.Flags[k])
	}
	b = appendString(b, r.Cwd)
	b = binary.AppendVarint(b, int64(r.Pid))
	b = appendString(b, r.Prog)
	b = appendStrings(b, r.GlobalArgs)
	b = appendBool(b, r.Terse)
	b = appendBool(b, r.Log != nil)
	if r.Log != nil {
		b = appendStrings(b, r.Log.Destinations)
		b = appendString(b, r.Log.Facility)
		b = appendString(b, r.Log.Format)
	}
	b = appendBool(b, r.Receive)
	b = appendBool(b, r.Files)
	return b
}

// ErrOldProtocol is ParseRequest's error for a JSON request.
var ErrOldProtocol = errors.New("a JSON request: protocol version 3 or earlier")

// ParseRequest decodes AppendRequest's encoding. It stops after the
// version when that is not Version: the caller refuses the request by it.
func ParseRequest(p []byte) (*Request, error) {
	if len(p) > 0 && p[0] == '{' {
		return nil, ErrOldProtocol
	}
	d := &decoder{p: p}
	r := &Request{Version: int(d.uvarint())}
	if d.err != nil || r.Version != Version {
		return r, d.err
	}
	r.Fingerprint = d.string()
	r.Command = d.string()
	r.Positionals = d.strings()
	if n, ok := d.count(); ok {
		r.Options = make(map[string]string, n)
		for i := 0; i < n && d.err == nil; i++ {
			k := d.string()
			r.Options[k] = d.string()
		}
	}
	if n, ok := d.count(); ok {
		r.Flags = make(map[string]bool, n)
		for i := 0; i < n && d.err == nil; i++ {
			k := d.string()
			r.Flags[k] = d.bool()
		}
	}
	r.Cwd = d.string()
	r.Pid = int(d.varint())
	r.Prog = d.string()
	r.GlobalArgs = d.strings()
	r.Terse = d.bool()
	if d.bool() {
		r.Log = &LogShape{Destinations: d.strings()}
		r.Log.Facility = d.string()
		r.Log.Format = d.string()
	}
	r.Receive = d.bool()
	r.Files = d.bool()
	if d.err == nil && len(d.p) > 0 {
		d.err = fmt.Errorf("%d bytes after the request", len(d.p))
	}
	return r, d.err
}

// AppendExit and ParseExit encode the exit frame's status.
func AppendExit(b []byte, status int) []byte { return binary.AppendVarint(b, int64(status)) }

func ParseExit(p []byte) (int, error) {
	d := &decoder{p: p}
	st := int(d.varint())
	if d.err == nil && len(d.p) > 0 {
		d.err = fmt.Errorf("%d bytes after the status", len(d.p))
	}
	return st, d.err
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendCount(b []byte, isNil bool, n int) []byte {
	if isNil {
		return append(b, 0)
	}
	return binary.AppendUvarint(b, uint64(n)+1)
}

func appendStrings(b []byte, ss []string) []byte {
	b = appendCount(b, ss == nil, len(ss))
	for _, s := range ss {
		b = appendString(b, s)
	}
	return b
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// decoder reads AppendRequest's primitives; the first error sticks and
// every later read returns zero values.
type decoder struct {
	p   []byte
	err error
}

var errTruncated = errors.New("truncated request")

func (d *decoder) uvarint() uint64 { return next(d, binary.Uvarint) }
func (d *decoder) varint() int64   { return next(d, binary.Varint) }

// next reads one number with read (binary.Uvarint or binary.Varint).
func next[T uint64 | int64](d *decoder, read func([]byte) (T, int)) T {
	if d.err != nil {
		return 0
	}
	v, n := read(d.p)
	if n <= 0 {
		d.err = errTruncated
		return 0
	}
	d.p = d.p[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.p)) {
		d.err = errTruncated
		return ""
	}
	s := string(d.p[:n])
	d.p = d.p[n:]
	return s
}

func (d *decoder) bool() bool {
	if d.err != nil {
		return false
	}
	if len(d.p) == 0 || d.p[0] > 1 {
		d.err = errTruncated
		return false
	}
	v := d.p[0] == 1
	d.p = d.p[1:]
	return v
}

// count reads appendCount's value: ok is false for nil (or an error). A
// count larger than the bytes left could ever hold is an error, so that
// a bad frame cannot make the agent allocate much.
func (d *decoder) count() (int, bool) {
	c := d.uvarint()
	if d.err != nil || c == 0 {
		return 0, false
	}
	if c-1 > uint64(len(d.p)) {
		d.err = errTruncated
		return 0, false
	}
	return int(c - 1), true
}

func (d *decoder) strings() []string {
	n, ok := d.count()
	if !ok {
		return nil
	}
	ss := make([]string, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		ss = append(ss, d.string())
	}
	return ss
}
