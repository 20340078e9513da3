package config

import (
	"strings"
	"testing"
)

func TestPushAheadConcurrencyDefaultsTo8UnlessUploadConcurrencyIsSet(t *testing.T) {
	base := map[string]string{"WALE_FILE_PREFIX": "file://localhost/tmp/x"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	cases := []struct {
		env  map[string]string
		want int
	}{
		{with(), 8},
		{with("WALDEN_UPLOAD_CONCURRENCY", "3"), 3},
		{with("WALDEN_PUSH_AHEAD_CONCURRENCY", "16"), 16},
		{with("WALDEN_UPLOAD_CONCURRENCY", "3", "WALDEN_PUSH_AHEAD_CONCURRENCY", "5"), 5},
	}
	for _, c := range cases {
		s, err := Load(envOf(c.env), Flags{})
		if err != nil {
			t.Fatal(err)
		}
		if s.PushAheadConcurrency != c.want {
			t.Errorf("%v: push-ahead concurrency %d, want %d", c.env, s.PushAheadConcurrency, c.want)
		}
	}
	for _, v := range []string{"0", "", "many"} {
		_, err := Load(envOf(with("WALDEN_PUSH_AHEAD_CONCURRENCY", v)), Flags{})
		if err == nil || !strings.Contains(err.Error(), "WALDEN_PUSH_AHEAD_CONCURRENCY") {
			t.Errorf("%q: %v", v, err)
		}
	}
}
