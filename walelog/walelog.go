// Package walelog writes WAL-E's log records (the lines operators' alerts
// grep for) on top of zerolog, to stderr, syslog and an optional file, or as
// zerolog JSON.
package walelog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Level is a WAL-E log level.
type Level int

const (
	Debug Level = iota
	Info
	Warning
	Error
	Critical
)

var levelNames = [...]string{"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}

func (l Level) String() string { return levelNames[l] }

// zerolog levels carry WAL-E's five; CRITICAL rides on zerolog's fatal level
// name-only (the event is written with WithLevel, so nothing exits).
var toZero = [...]zerolog.Level{zerolog.DebugLevel, zerolog.InfoLevel, zerolog.WarnLevel, zerolog.ErrorLevel, zerolog.FatalLevel}

// syslog severities per level.
var severity = [...]int{7, 6, 4, 3, 2}

// Logger names used by WAL-E (reference 7.4).
const (
	Main       = "wal_e.main"
	Backup     = "wal_e.operator.backup"
	Upload     = "wal_e.worker.upload"
	Base       = "wal_e.worker.base"
	Prefetch   = "wal_e.worker.prefetch"
	Retries    = "wal_e.retries"
	TarPart    = "wal_e.tar_partition"
	WaldenName = "walden"
)

// Field is one structured key=value pair.
type Field struct{ K, V string }

// F makes a Field.
func F(k, v string) Field { return Field{k, v} }

// Record is one log record in WAL-E's shape.
type Record struct {
	Logger string
	Level  Level
	Msg    string
	Detail string // "" = none
	Hint   string // "" = none
	Fields []Field
}

// Options configures a Logger.
type Options struct {
	Stderr       io.Writer // default os.Stderr
	Destinations []string  // WALE_LOG_DESTINATION tokens; nil means stderr,syslog
	Facility     string    // WALE_SYSLOG_FACILITY
	Format       string    // "wal-e" (default) or "json"
	Terse        bool      // threshold WARNING
	File         io.Writer // extra destination (the agent's WALDEN_LOG_FILE)
	SyslogPaths  []string  // override for tests
	Now          func() time.Time
	Pid          int
}

// Logger writes records. It is safe for concurrent use; records never interleave.
type Logger struct {
	z        zerolog.Logger
	min      Level
	mu       sync.Mutex
	out      *fanout
	now      func() time.Time
	pid      int
	jsonMode bool
}

// New builds a Logger. It never fails: an unusable syslog socket is skipped
// silently (WAL-E printed a traceback per record instead).
func New(o Options) *Logger {
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.Destinations == nil {
		o.Destinations = []string{"stderr", "syslog"}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Pid == 0 {
		o.Pid = os.Getpid()
	}
	l := &Logger{min: Info, now: o.Now, pid: o.Pid, jsonMode: o.Format == "json"}
	if o.Terse {
		l.min = Warning
	}
	f := &fanout{jsonMode: l.jsonMode}
	for _, d := range o.Destinations {
		switch d { // exact tokens, no trimming, unknown ones ignored: as WAL-E
		case "stderr":
			f.stderr = o.Stderr
		case "syslog":
			fac, ok := facilities[strings.ToLower(o.Facility)]
			if o.Facility == "" {
				fac, ok = facilities["user"], true
			}
			if !ok {
				fmt.Fprintln(o.Stderr, "invalid syslog facility level specified")
				fac = facilities["user"]
			}
			f.syslog = dialSyslog(o.SyslogPaths)
			f.facility = fac
		}
	}
	if len(o.Destinations) == 0 {
		f.bare = o.Stderr
	}
	f.file = o.File
	l.out = f
	l.z = zerolog.New(f)
	return l
}

// Close releases the syslog connection; the Logger must not be used after.
func (l *Logger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.out.syslog != nil {
		err := l.out.syslog.Close()
		l.out.syslog = nil
		return err
	}
	return nil
}

// SetFile replaces the extra file destination (SIGHUP reopening).
func (l *Logger) SetFile(w io.Writer) {
	l.mu.Lock()
	l.out.file = w
	l.mu.Unlock()
}

// Log writes one record.
func (l *Logger) Log(r Record) {
	if r.Level < l.min {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.z.WithLevel(toZero[r.Level]).
		Str("time", FormatTime(l.now())).
		Int("pid", l.pid).
		Str("logger", r.Logger).
		Str("walelevel", r.Level.String())
	if r.Detail != "" {
		e = e.Str("detail", r.Detail)
	}
	if r.Hint != "" {
		e = e.Str("hint", r.Hint)
	}
	for _, f := range r.Fields {
		e = e.Str(f.K, f.V)
	}
	e.Msg(r.Msg)
}

// Info, Warning and Error are shorthands.
func (l *Logger) Info(logger, msg, detail, hint string, fields ...Field) {
	l.Log(Record{Logger: logger, Level: Info, Msg: msg, Detail: detail, Hint: hint, Fields: fields})
}

func (l *Logger) Warn(logger, msg, detail, hint string, fields ...Field) {
	l.Log(Record{Logger: logger, Level: Warning, Msg: msg, Detail: detail, Hint: hint, Fields: fields})
}

func (l *Logger) Error(logger, msg, detail, hint string, fields ...Field) {
	l.Log(Record{Logger: logger, Level: Error, Msg: msg, Detail: detail, Hint: hint, Fields: fields})
}

// FormatTime renders WAL-E's STRUCTURED time: UTC, 6 fractional digits, "-00".
func FormatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000") + "-00"
}

// FormatRate renders KiB/s like Python's '{:02g}'.
func FormatRate(bytes int64, d time.Duration) string {
	if d <= 0 {
		return "nan"
	}
	v := float64(bytes) / 1024 / d.Seconds()
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return "nan"
	}
	s := strconv.FormatFloat(v, 'g', 6, 64)
	// Go writes 1e+06 like Python but keeps a two-digit exponent minimum the same way.
	return s
}

// Format renders a record exactly as WAL-E's handlers did:
// "%-12s %-8s " + MSG/DETAIL/HINT/STRUCTURED lines, newlines indented by 8 spaces.
func Format(logger string, level Level, msg, detail, hint, structured string) string {
	return fmt.Sprintf("%-12s %-8s ", logger, level.String()) + indent(body(msg, detail, hint, structured))
}

func body(msg, detail, hint, structured string) string {
	var b strings.Builder
	b.WriteString("MSG: ")
	b.WriteString(msg)
	if detail != "" {
		b.WriteString("\nDETAIL: ")
		b.WriteString(detail)
	}
	if hint != "" {
		b.WriteString("\nHINT: ")
		b.WriteString(hint)
	}
	b.WriteString("\nSTRUCTURED: ")
	b.WriteString(structured)
	return b.String()
}

func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n        ") }

// Structured renders "time=... pid=N" then the sorted k=v pairs.
func Structured(t string, pid int, fields []Field) string {
	kv := make([]string, 0, len(fields))
	for _, f := range fields {
		kv = append(kv, f.K+"="+f.V)
	}
	sort.Strings(kv)
	s := "time=" + t + " pid=" + strconv.Itoa(pid)
	if len(kv) > 0 {
		s += " " + strings.Join(kv, " ")
	}
	return s
}

// fanout receives zerolog's JSON events and writes them to each destination
// in the configured shape.
type fanout struct {
	jsonMode bool
	stderr   io.Writer
	bare     io.Writer
	file     io.Writer
	syslog   net.Conn
	facility int
}

var reserved = map[string]bool{"time": true, "pid": true, "logger": true, "walelevel": true, "level": true, "message": true, "detail": true, "hint": true}

func (f *fanout) Write(p []byte) (int, error) {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return len(p), nil
	}
	str := func(k string) string { s, _ := m[k].(string); return s }
	lvl := Info
	for i, n := range levelNames {
		if n == str("walelevel") {
			lvl = Level(i)
		}
	}
	if f.jsonMode {
		// zerolog's own JSON, minus the internal level copy.
		delete(m, "walelevel")
		m["level"] = strings.ToLower(lvl.String())
		out, _ := json.Marshal(m)
		out = append(out, '\n')
		f.emit(out, lvl)
		return len(p), nil
	}
	var fields []Field
	for k, v := range m {
		if reserved[k] {
			continue
		}
		fields = append(fields, Field{k, fmt.Sprint(v)})
	}
	pid, _ := strconv.Atoi(fmt.Sprint(m["pid"]))
	structured := Structured(str("time"), pid, fields)
	if f.bare != nil && lvl >= Warning {
		io.WriteString(f.bare, body(str("message"), str("detail"), str("hint"), structured)+"\n")
	}
	rec := Format(str("logger"), lvl, str("message"), str("detail"), str("hint"), structured)
	f.emit([]byte(rec+"\n"), lvl)
	if f.syslog != nil {
		msg := "<" + strconv.Itoa(f.facility*8+severity[lvl]) + ">" + rec + "\x00"
		f.syslog.Write([]byte(msg))
	}
	return len(p), nil
}

func (f *fanout) emit(b []byte, lvl Level) {
	if f.stderr != nil {
		f.stderr.Write(b)
	}
	if f.file != nil {
		f.file.Write(b)
	}
	if f.jsonMode && f.syslog != nil {
		f.syslog.Write(append([]byte("<"+strconv.Itoa(f.facility*8+severity[lvl])+">"), b...))
	}
}

func dialSyslog(paths []string) net.Conn {
	if paths == nil {
		paths = []string{"/dev/log", "/var/run/log", "/var/run/syslog"}
	}
	for _, p := range paths {
		for _, netw := range []string{"unixgram", "unix"} {
			if c, err := net.DialTimeout(netw, p, 200*time.Millisecond); err == nil {
				return c
			}
		}
	}
	return nil
}

var facilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
	"uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "security": 4,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}
