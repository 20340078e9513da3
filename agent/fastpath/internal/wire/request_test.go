package wire

import (
	"reflect"
	"strings"
	"testing"
)

// fullRequest has every field of Request set, found by reflection, so
// that a field added to Request without its encoding fails the round trip.
func fullRequest(t *testing.T) *Request {
	r := &Request{Version: Version}
	v := reflect.ValueOf(r).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		switch name := v.Type().Field(i).Name; f.Kind() {
		case reflect.String:
			// Not UTF-8, with a NUL and a quote: paths are bytes.
			f.SetString(name + "\xff\x00\"")
		case reflect.Int:
			if name != "Version" {
				f.SetInt(-12345)
			}
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Slice:
			f.Set(reflect.ValueOf([]string{name, "", "b\xfe"}))
		case reflect.Map:
			m := reflect.MakeMap(f.Type())
			for _, k := range []string{"z", "a", ""} {
				val := reflect.New(f.Type().Elem()).Elem()
				if val.Kind() == reflect.String {
					val.SetString(k + "v")
				} else {
					val.SetBool(k != "")
				}
				m.SetMapIndex(reflect.ValueOf(k), val)
			}
			f.Set(m)
		case reflect.Pointer:
			f.Set(reflect.ValueOf(&LogShape{Destinations: []string{"stderr", "syslog"}, Facility: "local3", Format: "json"}))
		default:
			t.Fatalf("Request.%s: a %s field the test does not fill", name, f.Kind())
		}
	}
	return r
}

func TestRequestCrossesTheSocketWithEveryFieldExact(t *testing.T) {
	want := fullRequest(t)
	got, err := ParseRequest(AppendRequest(nil, want))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("sent %+v\nreceived %+v", want, got)
	}
	// nil and empty stay apart: an empty WALE_LOG_DESTINATION logs nowhere.
	for _, r := range []*Request{
		{Version: Version},
		{Version: Version, Positionals: []string{}, Options: map[string]string{}, Flags: map[string]bool{}, GlobalArgs: []string{}, Log: &LogShape{Destinations: []string{}}},
		{Version: Version, Log: &LogShape{}},
	} {
		got, err := ParseRequest(AppendRequest(nil, r))
		if err != nil || !reflect.DeepEqual(got, r) {
			t.Errorf("sent %#v, received %#v (%v)", r, got, err)
		}
	}
}

func TestMalformedRequestsAreErrorsNotPanics(t *testing.T) {
	b := AppendRequest(nil, fullRequest(t))
	for n := 1; n < len(b); n++ {
		if _, err := ParseRequest(b[:n]); err == nil {
			t.Fatalf("a request cut to %d of %d bytes parsed", n, len(b))
		}
	}
	if _, err := ParseRequest(append(b, 0)); err == nil {
		t.Fatal("a request with a byte after it parsed")
	}
	if _, err := ParseRequest([]byte(`{"version":3}`)); err != ErrOldProtocol {
		t.Fatalf("JSON request: %v", err)
	}
	// A count no frame could hold must not allocate it.
	huge := appendString(append([]byte{Version}, 0xff, 0xff, 0xff, 0xff, 0x0f), "")
	if _, err := ParseRequest(huge); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("huge string length: %v", err)
	}
	r, err := ParseRequest(AppendRequest(nil, &Request{Version: Version + 1, Command: "wal-push"}))
	if err != nil || r.Version != Version+1 {
		t.Fatalf("another version must parse up to the version: %+v, %v", r, err)
	}
}

func TestExitStatusRoundTrips(t *testing.T) {
	for _, st := range []int{0, 1, 2, 200, -1} {
		if got, err := ParseExit(AppendExit(nil, st)); err != nil || got != st {
			t.Errorf("status %d arrived as %d (%v)", st, got, err)
		}
	}
	if _, err := ParseExit(nil); err == nil {
		t.Error("an empty exit frame parsed")
	}
}
