// Package check is `walden check`: it proves that the configured store,
// encryption key and PostgreSQL server are fit for archiving, and lists
// what the store already holds. The cookbook runs it as a guard before a
// migration and operators run it by hand, so every problem is one line
// naming the thing that is wrong.
package check

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/walden-pg/walden/blob"
	"github.com/walden-pg/walden/config"
	"github.com/walden-pg/walden/storage"
)

// DefaultTimeout bounds each part of a run. A store that retries forever
// (WALE_RETRIES < 1) or a hung gpg must not hang a converge.
const DefaultTimeout = 60 * time.Second

// Input is what a run needs; the command builds it from its configuration.
type Input struct {
	Settings *config.Settings
	// OpenStore opens the configured store.
	OpenStore func(context.Context) (storage.Store, error)
	// Format is how walden writes objects; asked for only when GPG is configured.
	Format func() (blob.Format, error)
	// Postgres reads the server's state; nil skips the PostgreSQL checks.
	Postgres func(context.Context) (*PGFacts, error)
	// Timeout bounds each part; 0 means DefaultTimeout.
	Timeout time.Duration
	// Secrets are values that must never appear in the report (AWS secret
	// key, session token, PGPASSWORD), whatever a library put in an error.
	Secrets []string
	// ProbeKey overrides the probe object's key; "" picks a unique one.
	ProbeKey string
	// Service asks the running agent to run RunService inside its
	// sandbox; nil skips that part. An error wrapping ErrNoAgent means
	// no agent answers.
	Service func(context.Context) (*ServiceReport, error)
	// RequireService makes a missing or silent agent a failure.
	RequireService bool
}

// ErrNoAgent is wrapped by Input.Service's error when no agent answers.
var ErrNoAgent = errors.New("no agent answers")

// Result is the outcome of one check.
type Result struct {
	Name    string `json:"name"`
	OK      bool   `json:"ok"`
	Skipped bool   `json:"skipped,omitempty"`
	Detail  string `json:"detail"`
}

func pass(name, format string, a ...any) Result {
	return Result{Name: name, OK: true, Detail: fmt.Sprintf(format, a...)}
}

func fail(name, format string, a ...any) Result {
	return Result{Name: name, Detail: fmt.Sprintf(format, a...)}
}

func skip(name, format string, a ...any) Result {
	return Result{Name: name, OK: true, Skipped: true, Detail: fmt.Sprintf(format, a...)}
}

// Report is everything a run found.
type Report struct {
	OK     bool     `json:"ok"`
	Checks []Result `json:"checks"`
	// Backups is nil when the store could not be listed, empty when it
	// holds none.
	Backups []Backup `json:"backups"`
	// WAL is nil when the store could not be listed.
	WAL *WALSummary `json:"wal"`
}

// Problems are the failed checks.
func (r *Report) Problems() []Result {
	var out []Result
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c)
		}
	}
	return out
}

func (r *Report) add(res ...Result) { r.Checks = append(r.Checks, res...) }

// Run performs every check and returns the report; it never fails itself,
// every problem is a failed check.
func Run(ctx context.Context, in Input) *Report {
	if in.Timeout <= 0 {
		in.Timeout = DefaultTimeout
	}
	s := in.Settings
	r := &Report{}
	r.add(configResult(s))

	var st storage.Store
	if !s.HasPrefix {
		r.add(skip("store", "no storage prefix is configured"))
	} else if opened, err := in.OpenStore(ctx); err != nil {
		r.add(fail("store", "cannot open %s: %v", s.Prefix.Raw, err))
	} else {
		res, ok := withTimeout(ctx, in.Timeout, func(ctx context.Context) Result {
			return probeStore(ctx, opened, s.Prefix.Raw, in.ProbeKey)
		})
		if !ok {
			res = fail("store", "the probe at %s did not finish within %v", s.Prefix.Raw, in.Timeout)
		}
		r.add(res)
		if res.OK {
			st = opened
		}
	}

	res, ok := withTimeout(ctx, in.Timeout, func(context.Context) Result { return checkGPG(s.GPG, in.Format) })
	if !ok {
		res = fail("gpg", "encrypting or decrypting a probe did not finish within %v", in.Timeout)
	}
	r.add(res)

	if in.Postgres == nil {
		r.add(skip("postgres", "not checked (--no-postgres)"))
	} else {
		type answer struct {
			facts *PGFacts
			err   error
		}
		a, ok := withTimeout(ctx, in.Timeout, func(ctx context.Context) answer {
			f, err := in.Postgres(ctx)
			return answer{f, err}
		})
		switch {
		case !ok:
			r.add(fail("postgres", "reading the server's settings did not finish within %v", in.Timeout))
		case a.err != nil:
			r.add(fail("postgres", "%v (--no-postgres skips the PostgreSQL checks)", a.err))
		default:
			r.add(a.facts.connected())
			r.add(EvalPostgres(a.facts)...)
		}
	}

	if in.Service != nil {
		r.add(serviceResults(ctx, in)...)
	}

	if st == nil {
		r.add(skip("backups", "not listed: the store is not usable"), skip("wal", "not listed: the store is not usable"))
	} else {
		inv, ok := withTimeout(ctx, in.Timeout, func(ctx context.Context) inventory {
			return takeInventory(ctx, st, s.Prefix.Raw)
		})
		if !ok {
			inv = inventory{results: []Result{fail("backups", "listing %s did not finish within %v", s.Prefix.Raw, in.Timeout)}}
		}
		r.add(inv.results...)
		r.Backups, r.WAL = inv.backups, inv.wal
	}

	r.OK = true
	for i := range r.Checks {
		r.Checks[i].Detail = redact(r.Checks[i].Detail, in.Secrets)
		r.OK = r.OK && r.Checks[i].OK
	}
	return r
}

// serviceResults are the agent's own checks, after one line saying who
// answered, or why nothing was checked from inside the service.
func serviceResults(ctx context.Context, in Input) []Result {
	// The agent bounds each of its parts by the timeout; this bounds the
	// whole exchange.
	ctx, cancel := context.WithTimeout(ctx, 3*in.Timeout+5*time.Second)
	defer cancel()
	rep, err := in.Service(ctx)
	if err != nil {
		if in.RequireService {
			return []Result{fail("service", "the service's own access cannot be checked: %v", err)}
		}
		return []Result{skip("service", "not checked from inside the service: %v", err)}
	}
	s := in.Settings
	if s.HasPrefix && rep.Prefix != s.Prefix.Raw {
		return []Result{fail("service", "the running agent (pid %d) uses the store %s, this configuration %s: restart walden.service to apply it",
			rep.Pid, rep.Prefix, s.Prefix.Raw)}
	}
	out := []Result{pass("service", "the agent (pid %d, user %s, PGDATA %s) ran the checks below inside its sandbox", rep.Pid, rep.User, orNone(rep.PGData))}
	for _, c := range rep.Checks {
		if !strings.HasPrefix(c.Name, "service ") {
			c.Name = "service " + c.Name
		}
		out = append(out, c)
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// withTimeout runs f under a deadline; ok is false when f did not return
// in time. f's goroutine is then abandoned (a gpg child may not heed the
// context); the process ends soon after anyway.
func withTimeout[T any](ctx context.Context, d time.Duration, f func(context.Context) T) (v T, ok bool) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	done := make(chan T, 1)
	go func() { done <- f(ctx) }()
	select {
	case v = <-done:
		return v, true
	case <-ctx.Done():
	}
	// Give f a moment to turn the deadline into its own, better message.
	select {
	case v = <-done:
		return v, true
	case <-time.After(min(2*time.Second, d/10)):
		return v, false
	}
}

func configResult(s *config.Settings) Result {
	if !s.HasPrefix {
		return fail("config", "no storage prefix is defined (set WALE_S3_PREFIX, WALE_GS_PREFIX or WALE_FILE_PREFIX)")
	}
	enc := "encryption off"
	if s.GPG.Enabled {
		key := s.GPG.KeyID
		if key == "" {
			key = "from " + s.GPG.PublicKeyPath
		}
		enc = "encryption to GPG key " + key
	}
	return pass("config", "prefix %s (from %s), compression %s, %s", s.Prefix.Raw, s.PrefixVar, s.Compression, enc)
}

// redact replaces every secret value with "***". Short values are left
// alone: replacing "1" everywhere would garble the report and hide nothing.
func redact(s string, secrets []string) string {
	for _, v := range secrets {
		if len(v) >= 4 {
			s = strings.ReplaceAll(s, v, "***")
		}
	}
	return s
}

// WriteText writes the human report: one line per check, the backups and
// the WAL timelines indented under their check lines.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, c := range r.Checks {
		mark := "ok  "
		switch {
		case !c.OK:
			mark = "FAIL"
		case c.Skipped:
			mark = "skip"
		}
		fmt.Fprintf(&b, "%s %s: %s\n", mark, c.Name, c.Detail)
		switch {
		case c.Name == "backups" && !c.Skipped:
			width := 0
			for _, bk := range r.Backups {
				width = max(width, len(bk.Name))
			}
			for _, bk := range r.Backups {
				fmt.Fprintf(&b, "     %-*s  %-6s  %s\n", width, bk.Name, bk.Maker(), stamp(bk.Modified))
			}
		case c.Name == "wal" && r.WAL != nil:
			for _, tl := range r.WAL.Timelines {
				fmt.Fprintf(&b, "     timeline %s: %s .. %s (%s)\n", tl.Timeline, tl.First, tl.Last, plural(tl.Segments, "segment"))
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// WriteJSON writes the report as one JSON object and a newline.
func (r *Report) WriteJSON(w io.Writer) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

// WriteProblems writes one line per failed check, each starting with
// prefix (e.g. "walden check: ").
func (r *Report) WriteProblems(w io.Writer, prefix string) error {
	var b strings.Builder
	for _, c := range r.Problems() {
		fmt.Fprintf(&b, "%s%s: %s\n", prefix, c.Name, c.Detail)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
