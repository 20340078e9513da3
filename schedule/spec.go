// Package schedule runs one job on a cron schedule, in UTC, and never lets
// two runs of it overlap.
package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-co-op/gocron/v2"
)

// Spec is a parsed 5-field cron expression (minute hour day-of-month month
// day-of-week), or a descriptor such as @daily, always read in UTC.
type Spec struct {
	expr string
	cron gocron.Cron
}

// Parse checks expr and returns its Spec. Time zone prefixes are refused:
// the schedule is documented as UTC, and a host's zone must not move it.
func Parse(expr string) (*Spec, error) {
	e := strings.TrimSpace(expr)
	if strings.HasPrefix(e, "TZ=") || strings.HasPrefix(e, "CRON_TZ=") {
		return nil, fmt.Errorf("%q: the schedule is always UTC; remove the time zone", expr)
	}
	if e == "" {
		return nil, errors.New("the schedule is empty")
	}
	c := gocron.NewDefaultCron(false)
	if err := c.IsValid(e, time.UTC, time.Now()); err != nil {
		return nil, fmt.Errorf("%q is not a cron schedule (minute hour day-of-month month day-of-week, UTC): %s", expr, innermost(err))
	}
	return &Spec{expr: e, cron: c}, nil
}

// innermost drops gocron's generic wrapper so the message says what is wrong.
func innermost(err error) string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs := j.Unwrap()
		if len(errs) > 0 {
			return innermost(errs[len(errs)-1])
		}
	}
	return strings.ReplaceAll(err.Error(), "\n", ": ")
}

// String is the expression as configured.
func (s *Spec) String() string { return s.expr }

// Next is the first firing strictly after t.
func (s *Spec) Next(t time.Time) time.Time { return s.cron.Next(t).UTC() }

// Interval is the schedule's period as seen from t: the time between the
// two firings that follow t. Irregular schedules (weekdays only) give the
// gap that applies there.
func (s *Spec) Interval(t time.Time) time.Duration {
	n := s.Next(t)
	return s.Next(n).Sub(n)
}

// Deadline is when the backup that ran from start to finish has become
// too old: the next firing after it finished, plus as long as it took (the
// next one should take about as long), plus a margin of a tenth of the
// schedule's period but at least an hour. A backup taken by hand between
// firings therefore counts until the next scheduled one is due, and one
// that overlapped a firing (which was then skipped) until the firing after.
func (s *Spec) Deadline(start, finish time.Time) time.Time {
	next := s.Next(finish)
	margin := s.Interval(finish) / 10
	if margin < time.Hour {
		margin = time.Hour
	}
	took := finish.Sub(start)
	if took < 0 {
		took = 0
	}
	return next.Add(took).Add(margin)
}
