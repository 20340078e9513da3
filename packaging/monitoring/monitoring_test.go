// Package monitoring holds the tests of the Grafana dashboard and the
// Prometheus rules shipped in /usr/share/walden/monitoring.
package monitoring

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/walden-pg/walden/internal/pgtest"
)

const (
	dashboardFile = "grafana-dashboard.json"
	rulesFile     = "prometheus-rules.yml"
)

// rulesTestFiles are promtool's unit tests of the rules; the second one
// evaluates less often, for alerts that take days.
var rulesTestFiles = []string{"testdata/prometheus-rules.test.yml", "testdata/prometheus-rules-days.test.yml"}

// pendingMetrics are metrics the dashboard or the rules show before the
// agent exports them. Once the agent exports one, the test fails until it is
// removed from this list, so the list cannot go stale.
var pendingMetrics = []string{}

var metricName = regexp.MustCompile(`\bwalden_[a-z0-9_]+`)

func read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install Debian's prometheus package (scripts/deps.sh)")
	}
	return p
}

func runPromtool(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(promtool(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestRulesPassPromtoolCheck(t *testing.T) {
	out := runPromtool(t, "check", "rules", rulesFile)
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool check rules: %s", out)
	}
}

// The unit tests feed series for each situation (old backup, failing
// archive_command, growing lag, agent down, verification problems) and
// expect exactly the alerts, labels and annotations for it.
func TestRulesFireOnTheSituationsTheyAreFor(t *testing.T) {
	out := runPromtool(t, append([]string{"test", "rules"}, rulesTestFiles...)...)
	if strings.Count(out, "SUCCESS") != len(rulesTestFiles) {
		t.Errorf("promtool test rules: %s", out)
	}
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func TestEveryAlertHasForSeverityAndSummaryAndDescription(t *testing.T) {
	var rf ruleFile
	if err := yaml.Unmarshal([]byte(read(t, rulesFile)), &rf); err != nil {
		t.Fatal(err)
	}
	alerts := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("rule %q is not an alert", r.Record)
				continue
			}
			alerts[r.Alert] = true
			if d, err := model.ParseDuration(r.For); err != nil || d <= 0 {
				t.Errorf("%s: for: %q", r.Alert, r.For)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: summary or description missing", r.Alert)
			}
		}
	}
	// The situations operators asked to be woken for.
	for _, a := range []string{"WaldenBackupTooOld", "WaldenNoBackupYet", "WaldenArchivingFailing",
		"WaldenArchiveLagHigh", "WaldenAgentDown", "WaldenAgentNotScraped", "WaldenVerifyProblems"} {
		if !alerts[a] {
			t.Errorf("no alert %s", a)
		}
	}
	// Each alert is exercised by the promtool unit tests.
	var tests string
	for _, f := range rulesTestFiles {
		tests += read(t, f)
	}
	for a := range alerts {
		if !regexp.MustCompile(`alertname: ` + a + `\n\s+exp_alerts:\n\s+- exp_labels:`).MatchString(tests) {
			t.Errorf("no promtool test expects %s to fire", a)
		}
	}
}

// The Debian package installs both files where the documentation says.
func TestPackageInstallsBothFilesUnderUsrShareWaldenMonitoring(t *testing.T) {
	var cfg struct {
		Contents []struct {
			Src, Dst, Type string
			FileInfo       struct {
				Mode int `yaml:"mode"`
			} `yaml:"file_info"`
		} `yaml:"contents"`
	}
	if err := yaml.Unmarshal([]byte(read(t, "../../nfpm.yaml")), &cfg); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{dashboardFile, rulesFile} {
		found := false
		for _, c := range cfg.Contents {
			if c.Src == "packaging/monitoring/"+f {
				found = true
				if c.Dst != "/usr/share/walden/monitoring/"+f || c.Type != "" || c.FileInfo.Mode != 0o644 {
					t.Errorf("nfpm.yaml installs %s as %s (type %q, mode %o)", f, c.Dst, c.Type, c.FileInfo.Mode)
				}
			}
		}
		if !found {
			t.Errorf("nfpm.yaml does not install %s", f)
		}
	}
}

type dashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID      int    `json:"id"`
		Type    string `json:"type"`
		Title   string `json:"title"`
		GridPos struct {
			X, Y, W, H int
		} `json:"gridPos"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	var d dashboard
	if err := json.Unmarshal([]byte(read(t, dashboardFile)), &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// grafanaVars stand in for the dashboard's variables so that promtool can
// parse the expressions as Prometheus would receive them.
var grafanaVars = strings.NewReplacer(`$__rate_interval`, `5m`, `$__interval`, `1m`, `$__range`, `1h`,
	`$job`, `.+`, `$instance`, `.+`)

func TestDashboardHasPanelsVariablesAndExpressionsPrometheusParses(t *testing.T) {
	d := loadDashboard(t)
	if d.Title == "" || d.UID == "" {
		t.Errorf("title %q uid %q", d.Title, d.UID)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Type == "query" && !strings.Contains(v.Definition, "label_values(walden_") {
			t.Errorf("variable %s does not list walden agents: %q", v.Name, v.Definition)
		}
	}
	for name, typ := range map[string]string{"datasource": "datasource", "job": "query", "instance": "query"} {
		if vars[name] != typ {
			t.Errorf("templating variable %s: type %q, want %q", name, vars[name], typ)
		}
	}

	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	graphs, ids := 0, map[int]bool{}
	selector := `{job=~"$job",instance=~"$instance"}`
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		graphs++
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v", p.Title, p.GridPos)
		}
		if p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: data source %q, want the ${datasource} variable", p.Title, p.Datasource.UID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			// Every series is narrowed to the chosen jobs and instances.
			for _, m := range regexp.MustCompile(`\b(walden_[a-z0-9_]+|up)\b(\{[^}]*\})?`).FindAllStringSubmatch(q.Expr, -1) {
				if m[2] != selector {
					t.Errorf("panel %q: %s without %s in %q", p.Title, m[1], selector, q.Expr)
				}
			}
			fmt.Fprintf(&rules, "      - record: panel_%d_%s\n        expr: %q\n", p.ID, q.RefID, grafanaVars.Replace(q.Expr))
		}
	}
	if graphs < 6 {
		t.Errorf("%d panels, want at least 6", graphs)
	}
	// promtool has no command to parse a bare expression; as recording
	// rules each one goes through Prometheus' own parser.
	f := filepath.Join(t.TempDir(), "dashboard-exprs.yml")
	if err := os.WriteFile(f, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	runPromtool(t, "check", "rules", f)
}

// The subjects the dashboard must show, by a metric each relies on.
func TestDashboardCoversBackupsArchivingRestoreAndVerification(t *testing.T) {
	text := read(t, dashboardFile)
	for _, m := range []string{
		"time() - walden_backup_last_success_timestamp_seconds", // age of the last good backup
		"walden_backup_last_duration_seconds",                   // duration over time
		"walden_backup_last_size_bytes",                         // size over time
		"walden_backup_progress_bytes",                          // live backup throughput
		"rate(walden_wal_fetched_total",                         // restore
		"walden_archive_lag_seconds",
		"walden_wal_push_failures_total",
		"rate(walden_wal_pushed_total",
		"walden_verify_problems",
		"walden_verify_last_success_timestamp_seconds",
		"walden_drill_last_success_timestamp_seconds",
		`up{job=~\"$job\"`,
	} {
		if !strings.Contains(text, m) {
			t.Errorf("dashboard does not use %s", m)
		}
	}
}

// referencedMetrics are the walden_* names the two files use.
func referencedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	refs := map[string][]string{}
	for _, f := range []string{dashboardFile, rulesFile} {
		for _, m := range metricName.FindAllString(read(t, f), -1) {
			if !slices.Contains(refs[m], f) {
				refs[m] = append(refs[m], f)
			}
		}
	}
	if len(refs) < 10 {
		t.Fatalf("only %d metric names found in the files: %v", len(refs), refs)
	}
	return refs
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// scrapeAgent runs `walden agent` against a real PostgreSQL 15 cluster and
// returns the metric families its /metrics serves.
func scrapeAgent(t *testing.T) map[string]bool {
	t.Helper()
	bin := pgtest.BuildWalden(t)
	c := pgtest.New(t, pgtest.Options{})
	store := c.MkDir(t, "store")
	env := filepath.Join(c.Base, "env")
	addr := freeAddr(t)
	if err := os.MkdirAll(env, 0o755); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"WALE_FILE_PREFIX":       "file://localhost" + store,
		"WALE_LOG_DESTINATION":   "stderr",
		"WALDEN_METRICS_LISTEN":  addr,
		"WALDEN_SOCKET":          filepath.Join(c.MkDir(t, "run"), "agent.sock"),
		"WALDEN_LOCK_DIR":        c.MkDir(t, "lock"),
		"WALDEN_BACKUP_SCHEDULE": "0 0 1 1 *",
	} {
		if err := os.WriteFile(filepath.Join(env, k), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pgtest.Chown(t, env)
	c.WriteConf(t, map[string]string{
		"archive_mode":    "on",
		"wal_level":       "replica",
		"archive_command": pgtest.Quote(fmt.Sprintf("%s --envdir %s wal-push %%p", bin, env)),
	})
	c.Start(t)

	stderr := &lockedBuffer{}
	cmd := pgtest.Command(t, c.Env(), "", bin, "--envdir", env, "agent", "--pgdata", c.Dir)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("agent stderr:\n%s", stderr.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), "MSG: agent started") {
		select {
		case err := <-exited:
			t.Fatalf("agent exited: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent did not start within 30s:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// One archived segment, so that the WAL counters have moved through a
	// real archive_command as well.
	c.Psql(t, "select pg_switch_wal()")

	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %s\n%s", resp.Status, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	got := map[string]bool{}
	for name := range fams {
		got[name] = true
	}
	return got
}

// TestEveryMetricTheDashboardAndRulesUseIsExportedByTheAgent scrapes a real
// agent: a renamed or misspelt metric would leave a panel empty and an
// alert silent forever.
func TestEveryMetricTheDashboardAndRulesUseIsExportedByTheAgent(t *testing.T) {
	refs := referencedMetrics(t)
	exported := scrapeAgent(t)
	var names []string
	for m := range refs {
		names = append(names, m)
	}
	sort.Strings(names)
	for _, m := range names {
		pending := slices.Contains(pendingMetrics, m)
		switch {
		case exported[m] && pending:
			t.Errorf("%s is exported now: remove it from pendingMetrics", m)
		case !exported[m] && !pending:
			t.Errorf("%s (used in %s) is not exported by the agent", m, strings.Join(refs[m], ", "))
		}
	}
	for _, m := range pendingMetrics {
		if refs[m] == nil {
			t.Errorf("pendingMetrics lists %s, which neither file uses", m)
		}
	}
}
