package agent

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/walden-pg/walden/schedule"
)

// Report is the state `walden status` shows; the agent serves it as JSON
// on /status, and status builds the same from the store when no agent runs.
type Report struct {
	Now             time.Time  `json:"now"`
	Agent           AgentInfo  `json:"agent"`
	Latest          *Backup    `json:"latest_backup"`
	LatestAge       float64    `json:"latest_backup_age_seconds,omitempty"`
	Healthy         bool       `json:"healthy"`
	Health          string     `json:"health"`
	Schedule        string     `json:"schedule"`
	NextRun         *time.Time `json:"next_run,omitempty"`
	Retention       string     `json:"retention"`
	PGData          string     `json:"pgdata,omitempty"`
	ArchiveLag      *float64   `json:"archive_lag_seconds"`
	ArchiveLagError string     `json:"archive_lag_error,omitempty"`
	BackupRunning   bool       `json:"backup_running"`
	RunningSince    *time.Time `json:"backup_running_since,omitempty"`
	Progress        *Progress  `json:"backup_progress,omitempty"`
	LastFailure     *Failure   `json:"last_failure,omitempty"`

	Checks *ChecksReport `json:"verify,omitempty"` // scheduled verify and drills
}

// AgentInfo says whether an agent answered and which.
type AgentInfo struct {
	Running bool       `json:"running"`
	Pid     int        `json:"pid,omitempty"`
	Started *time.Time `json:"started,omitempty"`
	Address string     `json:"metrics_address,omitempty"`
}

// Failure is the last failed run.
type Failure struct {
	Time  time.Time `json:"time"`
	Error string    `json:"error"`
}

// Assess says whether backups are healthy: a successful backup exists and
// is not older than the schedule allows (schedule.Spec.Deadline).
func Assess(spec *schedule.Spec, last *Backup, now time.Time) (bool, string) {
	if last == nil {
		return false, "no successful base backup yet"
	}
	age := now.Sub(last.Finish)
	if spec == nil {
		return true, fmt.Sprintf("last successful base backup %s finished %s ago", last.Name, Human(age))
	}
	due := spec.Deadline(last.Start, last.Finish)
	if now.After(due) {
		return false, fmt.Sprintf("last successful base backup %s finished %s ago; a newer one was due by %s", last.Name, Human(age), due.Format(timeFmt))
	}
	return true, fmt.Sprintf("last successful base backup %s finished %s ago", last.Name, Human(age))
}

// Fill completes the derived fields from the others.
func (r *Report) Fill(spec *schedule.Spec) {
	r.Healthy, r.Health = Assess(spec, r.Latest, r.Now)
	if r.Latest != nil {
		r.LatestAge = r.Now.Sub(r.Latest.Finish).Seconds()
	}
}

const timeFmt = "2006-01-02 15:04:05 UTC"

// WriteText prints the short human summary.
func (r *Report) WriteText(w io.Writer) {
	line := func(k, v string) { fmt.Fprintf(w, "%-16s%s\n", k+":", v) }
	if r.Agent.Running {
		v := fmt.Sprintf("running (pid %d", r.Agent.Pid)
		if r.Agent.Started != nil {
			v += ", since " + r.Agent.Started.UTC().Format(timeFmt)
		}
		line("agent", v+")")
	} else {
		line("agent", "not running")
	}
	if b := r.Latest; b != nil {
		line("latest backup", fmt.Sprintf("%s, finished %s (%s ago), took %s, %s read, %s stored",
			b.Name, b.Finish.UTC().Format(timeFmt), Human(r.Now.Sub(b.Finish)), Human(b.Duration()), Bytes(b.Size), Bytes(b.Stored)))
	} else {
		line("latest backup", "none")
	}
	h := "ok"
	if !r.Healthy {
		h = "FAILING"
	}
	line("health", h+": "+r.Health)
	sched := r.Schedule + " (UTC)"
	if r.NextRun != nil {
		sched += fmt.Sprintf(", next run %s (in %s)", r.NextRun.UTC().Format(timeFmt), Human(r.NextRun.Sub(r.Now)))
	}
	line("schedule", sched)
	line("retention", r.Retention)
	switch {
	case r.ArchiveLag != nil:
		line("archive lag", Human(time.Duration(*r.ArchiveLag*float64(time.Second))))
	case r.ArchiveLagError != "":
		line("archive lag", "unknown: "+r.ArchiveLagError)
	default:
		line("archive lag", "unknown")
	}
	if r.BackupRunning {
		v := "yes"
		if r.RunningSince != nil {
			v += ", since " + r.RunningSince.UTC().Format(timeFmt)
		}
		if r.Progress != nil {
			v += fmt.Sprintf(", %s read, %d partitions done", Bytes(r.Progress.BytesRead), r.Progress.PartitionsDone)
		}
		line("backup running", v)
	}
	if f := r.LastFailure; f != nil {
		line("last failure", f.Time.UTC().Format(timeFmt)+": "+f.Error)
	}
	r.Checks.writeText(w)
}

// Human renders a duration coarsely: 45s, 3m12s, 5h2m, 3d4h.
func Human(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

// Bytes renders a size in binary units.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	v, u := float64(n), 0
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB"}
	for v /= unit; v >= unit && u < len(units)-1; v /= unit {
		u++
	}
	return strings.TrimSuffix(strings.TrimSuffix(fmt.Sprintf("%.1f", v), "0"), ".") + units[u]
}
