package agent

import (
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the agent's walden_* series, on a registry of their own so
// that nothing else (no library default collector) ends up on /metrics.
type metrics struct {
	reg *prometheus.Registry

	agentStart       prometheus.Gauge
	running          prometheus.Gauge
	lastSuccess      prometheus.Gauge
	lastStart        prometheus.Gauge
	lastDuration     prometheus.Gauge
	lastSize         prometheus.Gauge
	lastStored       prometheus.Gauge
	progressBytes    prometheus.Gauge
	failures         prometheus.Counter
	skipped          prometheus.Counter
	retentionDeleted prometheus.Counter
	retentionFailed  prometheus.Counter
	walPushed        prometheus.Counter
	walPushFailed    prometheus.Counter
	walFetched       prometheus.Counter
	walFetchMissing  prometheus.Counter
	walFetchFailed   prometheus.Counter
}

func newMetrics(archiveLag func() (time.Duration, error), archiveReady func() (int, error), nextRun func() time.Time) *metrics {
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	}
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m := &metrics{
		reg:              prometheus.NewRegistry(),
		agentStart:       g("walden_agent_start_timestamp_seconds", "When the agent started, as a Unix timestamp."),
		running:          g("walden_backup_running", "1 while the agent is taking a base backup."),
		lastSuccess:      g("walden_backup_last_success_timestamp_seconds", "When the last successful base backup finished, as a Unix timestamp (0: none known)."),
		lastStart:        g("walden_backup_last_success_start_timestamp_seconds", "When the last successful base backup started, as a Unix timestamp (0: none known)."),
		lastDuration:     g("walden_backup_last_duration_seconds", "How long the last successful base backup took."),
		lastSize:         g("walden_backup_last_size_bytes", "Bytes read from the data directory by the last successful base backup."),
		lastStored:       g("walden_backup_last_stored_bytes", "Bytes written to the store by the last successful base backup."),
		progressBytes:    g("walden_backup_progress_bytes", "Bytes read so far by the running base backup (0 when none runs)."),
		failures:         c("walden_backup_failures_total", "Base backup runs that failed."),
		skipped:          c("walden_backup_skipped_total", "Base backup runs skipped because another backup was running."),
		retentionDeleted: c("walden_retention_deleted_total", "Base backups deleted by retention."),
		retentionFailed:  c("walden_retention_failures_total", "Retention passes that failed."),
		walPushed:        c("walden_wal_pushed_total", "wal-push calls served by the agent that succeeded."),
		walPushFailed:    c("walden_wal_push_failures_total", "wal-push calls served by the agent that failed."),
		walFetched:       c("walden_wal_fetched_total", "wal-fetch calls served by the agent that restored a file."),
		walFetchMissing:  c("walden_wal_fetch_not_found_total", "wal-fetch calls served by the agent for files the store does not hold."),
		walFetchFailed:   c("walden_wal_fetch_failures_total", "wal-fetch calls served by the agent that failed."),
	}
	m.reg.MustRegister(m.agentStart, m.running, m.lastSuccess, m.lastStart, m.lastDuration, m.lastSize, m.lastStored,
		m.progressBytes, m.failures, m.skipped, m.retentionDeleted, m.retentionFailed,
		m.walPushed, m.walPushFailed, m.walFetched, m.walFetchMissing, m.walFetchFailed)
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "walden_archive_lag_seconds",
		Help: "Age of the oldest WAL file waiting for archiving (.ready in pg_wal/archive_status); 0 when none waits, NaN when unreadable.",
	}, func() float64 {
		d, err := archiveLag()
		if err != nil {
			return math.NaN()
		}
		return d.Seconds()
	}))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "walden_archive_ready_segments",
		Help: "WAL files waiting for archiving (.ready in pg_wal/archive_status); NaN when unreadable.",
	}, func() float64 {
		n, err := archiveReady()
		if err != nil {
			return math.NaN()
		}
		return float64(n)
	}))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "walden_backup_next_run_timestamp_seconds",
		Help: "When the schedule next fires, as a Unix timestamp.",
	}, func() float64 { return unix(nextRun()) }))
	return m
}

func unix(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

func (m *metrics) setLast(b *Backup) {
	if b == nil {
		return
	}
	m.lastSuccess.Set(unix(b.Finish))
	m.lastStart.Set(unix(b.Start))
	m.lastDuration.Set(b.Duration().Seconds())
	m.lastSize.Set(float64(b.Size))
	m.lastStored.Set(float64(b.Stored))
}
