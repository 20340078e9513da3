package agent

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/walden-pg/walden/schedule"
	"github.com/walden-pg/walden/walelog"
)

func runFields(t schedule.Trigger, state string, extra ...walelog.Field) []walelog.Field {
	return append([]walelog.Field{walelog.F("action", "agent-backup"), walelog.F("state", state), walelog.F("trigger", t.String())}, extra...)
}

// skipped hears of a firing dropped because the previous run still goes.
func (a *Agent) skipped(t schedule.Trigger) {
	a.mu.Lock()
	since := a.runningSince
	a.mu.Unlock()
	detail := "The previous run is still going."
	if !since.IsZero() {
		detail = fmt.Sprintf("The previous run, started at %s, is still going.", since.Format(timeFmt))
	}
	a.m.skipped.Inc()
	a.Log().Warn(walelog.WaldenName, "base backup skipped", detail, "", runFields(t, "skip")...)
}

// runBackup is one run: lock, base backup, then retention. Retention only
// follows a successful backup, so failing backups never thin out the good
// ones.
func (a *Agent) runBackup(ctx context.Context, t schedule.Trigger) {
	c := a.config()
	log := c.Log
	unlock, err := c.Backups.Lock()
	if err != nil {
		if errors.Is(err, ErrBusy) {
			a.m.skipped.Inc()
			log.Warn(walelog.WaldenName, "base backup skipped", err.Error(), "", runFields(t, "skip")...)
			return
		}
		a.failed(log, t, fmt.Errorf("taking the backup lock: %w", err))
		return
	}
	defer unlock()

	start := a.o.Now()
	a.mu.Lock()
	a.runningSince, a.progress = start, Progress{}
	a.mu.Unlock()
	a.m.running.Set(1)
	a.preemptChecks()
	defer func() {
		a.mu.Lock()
		a.runningSince = time.Time{}
		a.mu.Unlock()
		a.m.running.Set(0)
		a.m.progressBytes.Set(0)
	}()
	log.Info(walelog.WaldenName, "starting a base backup", fmt.Sprintf("Data directory %s; %s.", a.o.PGData, describe(t)), "", runFields(t, "begin")...)

	// The Backuper logs its own progress lines; the agent keeps the
	// counters for /status and the metrics.
	b, err := c.Backups.Backup(ctx, func(p Progress) {
		a.mu.Lock()
		a.progress = p
		a.mu.Unlock()
		a.m.progressBytes.Set(float64(p.BytesRead))
	})
	if err != nil {
		if ctx.Err() != nil {
			log.Warn(walelog.WaldenName, "base backup cancelled",
				"The agent is stopping; the backup was abandoned before its sentinel, so it does not exist.", "", runFields(t, "cancelled")...)
			return
		}
		a.failed(log, t, err)
		return
	}
	a.mu.Lock()
	a.last = &b
	a.mu.Unlock()
	a.m.setLast(&b)
	log.Info(walelog.WaldenName, "base backup complete",
		fmt.Sprintf("%s took %s: %s read, %s stored.", b.Name, b.Duration().Round(time.Millisecond), Bytes(b.Size), Bytes(b.Stored)), "",
		runFields(t, "complete", walelog.F("backup", b.Name), walelog.F("bytes", strconv.FormatInt(b.Size, 10)),
			walelog.F("stored", strconv.FormatInt(b.Stored, 10)), walelog.F("duration", fmt.Sprintf("%.3f", b.Duration().Seconds())))...)

	n, err := c.Backups.Retain(ctx)
	if n > 0 {
		a.m.retentionDeleted.Add(float64(n))
	}
	rf := []walelog.Field{walelog.F("action", "agent-retain"), walelog.F("deleted", strconv.Itoa(n)), walelog.F("retain", c.Retain)}
	if err != nil {
		a.m.retentionFailed.Inc()
		log.Error(walelog.WaldenName, "retention failed", oneLine(err.Error()), "", append(rf, walelog.F("state", "failed"))...)
		return
	}
	log.Info(walelog.WaldenName, "retention applied", fmt.Sprintf("Kept backups per WALDEN_RETAIN=%s; deleted %d.", c.Retain, n), "",
		append(rf, walelog.F("state", "complete"))...)
}

func (a *Agent) failed(log *walelog.Logger, t schedule.Trigger, err error) {
	a.m.failures.Inc()
	a.mu.Lock()
	a.lastFailure = &Failure{Time: a.o.Now(), Error: oneLine(err.Error())}
	a.mu.Unlock()
	log.Error(walelog.WaldenName, "base backup failed", oneLine(err.Error()), "", runFields(t, "failed")...)
}

func oneLine(s string) string {
	out := []rune{}
	for _, r := range s {
		if r == '\n' {
			r = ' '
		}
		out = append(out, r)
	}
	return string(out)
}

func describe(t schedule.Trigger) string {
	if t == schedule.Manual {
		return "run asked for (SIGUSR1)"
	}
	return "scheduled run"
}
