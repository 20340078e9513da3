// Package config turns the process environment (after any envdir was applied)
// and the global command-line flags into typed settings. Every malformed
// value is an error naming the variable.
package config

import (
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/walden-pg/walden/storage"
)

// Env looks a variable up; ok is false when it is unset.
type Env func(name string) (value string, ok bool)

// Flags are WAL-E's global options; empty means "not given".
type Flags struct {
	FilePrefix, GSPrefix, S3Prefix, WABSPrefix string
	AWSAccessKeyID                             string
	AWSInstanceProfile                         bool
	GPGKeyID                                   *string
	Terse                                      bool
}

// S3 holds what the S3 backend needs.
type S3 struct {
	Region          string
	Endpoint        string // WALE_S3_ENDPOINT, e.g. https+path://host:port
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string // AWS_SECURITY_TOKEN, else AWS_SESSION_TOKEN
	InstanceProfile bool
	StorageClass    string
}

// GPG holds the encryption settings.
type GPG struct {
	KeyID          string // "" = encryption off
	Enabled        bool
	PublicKeyPath  string
	SecretKeyPath  string
	PassphrasePath string
}

// Settings is the whole configuration of one walden invocation.
type Settings struct {
	Prefix             storage.Prefix
	PrefixVar          string // the flag or variable the prefix came from, for messages
	HasPrefix          bool
	S3                 S3
	GCSCredentialsFile string
	GPG                GPG

	Compression         string
	UploadConcurrency   int
	DownloadConcurrency int
	PartitionSize       int64
	DiskRateLimit       int64 // bytes/s, 0 = none
	NetworkRateLimit    int64
	Retries             int // WALE_RETRIES; 0 means forever

	// PushAheadConcurrency is the agent's push-ahead upload workers.
	PushAheadConcurrency int

	LogDestinations []string // WALE_LOG_DESTINATION tokens
	SyslogFacility  string
	LogFormat       string // wal-e | json
	LogFile         string
	Terse           bool

	BackupSchedule string
	Retain         Retention
	MetricsListen  string
	PGData         string
	SocketPath     string

	// Progress off a terminal: how often restore --start logs its replay
	// line (WALDEN_PROGRESS_INTERVAL, default 30s).
	ProgressInterval time.Duration

	// WAL fetch: accept unencrypted objects although encryption is
	// configured (WALDEN_ALLOW_PLAINTEXT, for a WAL-E archive a key was
	// added to later).
	AllowPlaintext bool

	// Base backups: how long backup-push waits, after the backup stopped,
	// for its WAL to be archived and listed in the store
	// (WALDEN_BACKUP_WAL_TIMEOUT; 0 means the built-in default, 10m).
	BackupWALTimeout time.Duration

	// Warnings are settings that work but are likely mistakes; commands
	// log each one as a WARNING.
	Warnings []string

	Verify Verify // walden verify and restore drills

	// Delta backups: a backup-push is a page-level delta of the newest
	// backup while its chain has fewer than DeltaMaxSteps deltas
	// (WALDEN_DELTA_MAX_STEPS; 0, the default, means every backup is full).
	DeltaMaxSteps int
}

// Verify holds the settings of walden verify and its restore drills.
type Verify struct {
	Schedule      string // WALDEN_VERIFY_SCHEDULE: cron (UTC) or "off"
	DrillSchedule string // WALDEN_DRILL_SCHEDULE: cron (UTC) or "off"
	DrillDir      string // WALDEN_DRILL_DIR: where drills make scratch directories
}

// Retention is WALDEN_RETAIN: a count or an age.
type Retention struct {
	Count int
	Age   time.Duration
}

func (r Retention) String() string {
	if r.Count > 0 {
		return strconv.Itoa(r.Count)
	}
	return fmt.Sprintf("%dd", int(r.Age.Hours()/24))
}

// Error is a configuration error naming the variable at fault.
type Error struct {
	Var string
	Msg string
}

func (e *Error) Error() string { return e.Var + ": " + e.Msg }

func bad(v, format string, a ...any) error { return &Error{Var: v, Msg: fmt.Sprintf(format, a...)} }

// ErrNoPrefix is returned by RequirePrefix when no storage prefix is set.
var ErrNoPrefix = fmt.Errorf("no storage prefix defined")

// Load parses the settings. The prefix is optional here (version and help do
// not need one); commands that need it call RequirePrefix.
func Load(env Env, f Flags) (*Settings, error) {
	s := &Settings{Terse: f.Terse}
	get := func(name string) (string, bool, error) {
		v, ok := env(name)
		if ok && v == "" {
			// design.md 8.9: an empty value in the environment is an error;
			// an empty envdir file unsets the variable instead.
			return "", false, bad(name, "is set to the empty string; unset it or give it a value")
		}
		return v, ok, nil
	}
	str := func(name, def string) (string, error) {
		v, ok, err := get(name)
		if err != nil {
			return "", err
		}
		if !ok {
			return def, nil
		}
		return v, nil
	}
	var err error

	// Prefix: flags first, then variables, in WAL-E's order.
	cands := []struct{ name, val string }{
		{"--file-prefix", f.FilePrefix}, {"--gs-prefix", f.GSPrefix}, {"--s3-prefix", f.S3Prefix}, {"--wabs-prefix", f.WABSPrefix},
	}
	for _, n := range []string{"WALE_FILE_PREFIX", "WALE_GS_PREFIX", "WALE_S3_PREFIX", "WALE_SWIFT_PREFIX", "WALE_WABS_PREFIX"} {
		v, _ := env(n) // WAL-E treats an empty prefix as unset
		cands = append(cands, struct{ name, val string }{n, v})
	}
	var ignored []string
	for _, c := range cands {
		if c.val == "" {
			continue
		}
		if s.HasPrefix {
			// A flag overriding the variable of its own kind is the usual
			// way to point one command elsewhere; any other prefix set at
			// the same time is most likely left over from another setup.
			if flagVar[s.PrefixVar] != c.name {
				ignored = append(ignored, c.name)
			}
			continue
		}
		p, perr := storage.ParsePrefix(c.val)
		if perr != nil {
			return nil, bad(c.name, "%v", perr)
		}
		s.Prefix, s.PrefixVar, s.HasPrefix = p, c.name, true
	}
	if len(ignored) > 0 {
		s.Warnings = append(s.Warnings, fmt.Sprintf("several storage prefixes are set: %s wins over %s, which walden ignores (unset the ones not meant)",
			s.PrefixVar, strings.Join(ignored, ", ")))
	}

	// S3
	if s.S3.Region, err = str("AWS_REGION", ""); err != nil {
		return nil, err
	}
	if s.S3.Endpoint, err = str("WALE_S3_ENDPOINT", ""); err != nil {
		return nil, err
	}
	if s.S3.Endpoint != "" {
		if _, _, _, eerr := ParseS3Endpoint(s.S3.Endpoint); eerr != nil {
			return nil, bad("WALE_S3_ENDPOINT", "%v", eerr)
		}
	}
	s.S3.AccessKeyID = f.AWSAccessKeyID
	if s.S3.AccessKeyID == "" {
		s.S3.AccessKeyID, _ = env("AWS_ACCESS_KEY_ID")
	}
	s.S3.SecretAccessKey, _ = env("AWS_SECRET_ACCESS_KEY")
	s.S3.SessionToken, _ = env("AWS_SECURITY_TOKEN")
	if s.S3.SessionToken == "" {
		s.S3.SessionToken, _ = env("AWS_SESSION_TOKEN")
	}
	s.S3.InstanceProfile = f.AWSInstanceProfile
	if v, ok := env("AWS_INSTANCE_PROFILE"); ok {
		switch strings.ToLower(v) {
		case "", "0", "false":
		case "1", "true":
			s.S3.InstanceProfile = true
		default:
			return nil, bad("AWS_INSTANCE_PROFILE", "must be true, false, 1 or 0, not %q", v)
		}
	}
	if s.S3.InstanceProfile && f.AWSAccessKeyID != "" {
		return nil, bad("--aws-instance-profile", "cannot be combined with --aws-access-key-id")
	}
	if s.S3.StorageClass, err = str("WALE_S3_STORAGE_CLASS", "STANDARD"); err != nil {
		return nil, err
	}
	switch s.S3.StorageClass {
	case "STANDARD", "REDUCED_REDUNDANCY", "GLACIER", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "DEEP_ARCHIVE", "GLACIER_IR":
	default:
		return nil, bad("WALE_S3_STORAGE_CLASS", "unknown storage class %q", s.S3.StorageClass)
	}
	s.GCSCredentialsFile, _ = env("GOOGLE_APPLICATION_CREDENTIALS")

	// GPG: WAL-E enables encryption whenever the key id is set; an empty id
	// is refused by get() above rather than silently encrypting to nobody.
	if f.GPGKeyID != nil {
		if *f.GPGKeyID == "" {
			return nil, bad("--gpg-key-id", "is empty")
		}
		s.GPG.KeyID = *f.GPGKeyID
	} else if s.GPG.KeyID, err = str("WALE_GPG_KEY_ID", ""); err != nil {
		return nil, err
	}
	for _, p := range []struct {
		name string
		dst  *string
	}{{"WALDEN_GPG_PUBLIC_KEY_PATH", &s.GPG.PublicKeyPath}, {"WALDEN_GPG_SECRET_KEY_PATH", &s.GPG.SecretKeyPath}, {"WALDEN_GPG_PASSPHRASE_PATH", &s.GPG.PassphrasePath}} {
		if *p.dst, err = str(p.name, ""); err != nil {
			return nil, err
		}
	}
	s.GPG.Enabled = s.GPG.KeyID != "" || s.GPG.PublicKeyPath != ""

	// walden's own settings
	if s.Compression, err = str("WALDEN_COMPRESSION", "lz4"); err != nil {
		return nil, err
	}
	switch s.Compression {
	case "lz4", "zstd", "lzo", "none":
	default:
		return nil, bad("WALDEN_COMPRESSION", "must be lz4, zstd, lzo or none, not %q", s.Compression)
	}
	if s.UploadConcurrency, err = posInt(env, "WALDEN_UPLOAD_CONCURRENCY", runtime.NumCPU()); err != nil {
		return nil, err
	}
	if s.DownloadConcurrency, err = posInt(env, "WALDEN_DOWNLOAD_CONCURRENCY", runtime.NumCPU()*2); err != nil {
		return nil, err
	}

	// Push-ahead sends one segment per request, so its pace is the store's
	// latency, not the CPUs: 8 at once by default, or what
	// WALDEN_UPLOAD_CONCURRENCY says when that is set.
	pushAheadDefault := DefaultPushAheadConcurrency
	if _, ok := env("WALDEN_UPLOAD_CONCURRENCY"); ok {
		pushAheadDefault = s.UploadConcurrency
	}
	if s.PushAheadConcurrency, err = posInt(env, "WALDEN_PUSH_AHEAD_CONCURRENCY", pushAheadDefault); err != nil {
		return nil, err
	}
	if s.PartitionSize, err = size(env, "WALDEN_PARTITION_SIZE", 1<<30); err != nil {
		return nil, err
	}
	if s.PartitionSize < 1<<20 {
		return nil, bad("WALDEN_PARTITION_SIZE", "must be at least 1MiB")
	}
	if s.DiskRateLimit, err = size(env, "WALDEN_DISK_RATE_LIMIT", 0); err != nil {
		return nil, err
	}
	if s.NetworkRateLimit, err = size(env, "WALDEN_NETWORK_RATE_LIMIT", 0); err != nil {
		return nil, err
	}
	s.Retries = 100
	if v, ok, gerr := get("WALE_RETRIES"); gerr != nil {
		return nil, gerr
	} else if ok {
		n, perr := strconv.Atoi(v)
		if perr != nil {
			return nil, bad("WALE_RETRIES", "must be an integer, not %q", v)
		}
		if n < 0 {
			return nil, bad("WALE_RETRIES", "must not be negative, not %d (0 retries forever)", n)
		}
		s.Retries = n
	}

	// Logging. WALE_LOG_DESTINATION keeps WAL-E's exact token rules; an empty
	// value is meaningful there (no handlers), so it bypasses get().
	if v, ok := env("WALE_LOG_DESTINATION"); ok {
		s.LogDestinations = []string{}
		if v != "" {
			s.LogDestinations = strings.Split(v, ",")
		}
	} else {
		s.LogDestinations = []string{"stderr", "syslog"}
	}
	if s.SyslogFacility, err = str("WALE_SYSLOG_FACILITY", "user"); err != nil {
		return nil, err
	}
	// WAL-E compares in lower case; it fell back to "user" on anything
	// else, which silently sent the log where nobody looks.
	if !slices.Contains(SyslogFacilities, strings.ToLower(s.SyslogFacility)) {
		return nil, bad("WALE_SYSLOG_FACILITY", "unknown facility %q (valid: %s)", s.SyslogFacility, strings.Join(SyslogFacilities, ", "))
	}
	if s.LogFormat, err = str("WALDEN_LOG_FORMAT", "wal-e"); err != nil {
		return nil, err
	}
	if s.LogFormat != "wal-e" && s.LogFormat != "json" {
		return nil, bad("WALDEN_LOG_FORMAT", "must be wal-e or json, not %q", s.LogFormat)
	}
	if s.LogFile, err = str("WALDEN_LOG_FILE", ""); err != nil {
		return nil, err
	}

	// Agent
	if s.BackupSchedule, err = str("WALDEN_BACKUP_SCHEDULE", "0 0 * * *"); err != nil {
		return nil, err
	}
	rv, err := str("WALDEN_RETAIN", "14d")
	if err != nil {
		return nil, err
	}
	if s.Retain, err = ParseRetention(rv); err != nil {
		return nil, bad("WALDEN_RETAIN", "%v", err)
	}
	if s.MetricsListen, err = str("WALDEN_METRICS_LISTEN", "127.0.0.1:9351"); err != nil {
		return nil, err
	}
	if s.PGData, err = str("PGDATA", ""); err != nil {
		return nil, err
	}
	if s.SocketPath, err = str("WALDEN_SOCKET", "/run/walden/agent.sock"); err != nil {
		return nil, err
	}

	// WAL fetch
	switch v, err := str("WALDEN_ALLOW_PLAINTEXT", "false"); {
	case err != nil:
		return nil, err
	case v == "true" || v == "1":
		s.AllowPlaintext = true
	case v == "false" || v == "0" || v == "":
	default:
		return nil, bad("WALDEN_ALLOW_PLAINTEXT", "must be true, false, 1 or 0, not %q", v)
	}

	// Progress
	s.ProgressInterval = 30 * time.Second
	if v, err := str("WALDEN_PROGRESS_INTERVAL", ""); err != nil {
		return nil, err
	} else if v != "" {
		if s.ProgressInterval, err = parseWALTimeout(v); err != nil {
			return nil, bad("WALDEN_PROGRESS_INTERVAL", "%v", err)
		}
	}

	// Base backups
	if v, err := str("WALDEN_BACKUP_WAL_TIMEOUT", ""); err != nil {
		return nil, err
	} else if v != "" {
		if s.BackupWALTimeout, err = parseWALTimeout(v); err != nil {
			return nil, bad("WALDEN_BACKUP_WAL_TIMEOUT", "%v", err)
		}
	}

	// Delta backups
	if v, ok, gerr := get("WALDEN_DELTA_MAX_STEPS"); gerr != nil {
		return nil, gerr
	} else if ok {
		n, perr := strconv.Atoi(strings.TrimSpace(v))
		if perr != nil || n < 0 {
			return nil, bad("WALDEN_DELTA_MAX_STEPS", "must be a whole number of deltas, 0 or more (0: every backup is full), not %q", v)
		}
		s.DeltaMaxSteps = n
	}

	// Verify and restore drills
	if s.Verify.Schedule, err = str("WALDEN_VERIFY_SCHEDULE", "0 3 * * 0"); err != nil {
		return nil, err
	}
	if s.Verify.DrillSchedule, err = str("WALDEN_DRILL_SCHEDULE", "off"); err != nil {
		return nil, err
	}
	if s.Verify.DrillDir, err = str("WALDEN_DRILL_DIR", "/var/tmp/walden-drill"); err != nil {
		return nil, err
	}
	return s, nil
}

// parseWALTimeout reads a Go duration ("90s", "10m") or whole seconds.
func parseWALTimeout(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("must be a positive duration like 10m or 600, not %q", v)
	}
	return d, nil
}

// flagVar pairs each prefix flag with the variable of the same kind.
var flagVar = map[string]string{
	"--file-prefix": "WALE_FILE_PREFIX", "--gs-prefix": "WALE_GS_PREFIX", "--s3-prefix": "WALE_S3_PREFIX", "--wabs-prefix": "WALE_WABS_PREFIX",
}

// SyslogFacilities are the values WAL-E accepts for WALE_SYSLOG_FACILITY.
var SyslogFacilities = []string{"user", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"}

// RequirePrefix returns ErrNoPrefix when no storage prefix is configured.
func (s *Settings) RequirePrefix() error {
	if !s.HasPrefix {
		return ErrNoPrefix
	}
	return nil
}

// ParseRetention parses "7" (keep seven backups) or "14d" (keep fourteen days).
func ParseRetention(v string) (Retention, error) {
	if n, err := strconv.Atoi(v); err == nil {
		if n < 1 {
			return Retention{}, fmt.Errorf("a backup count must be at least 1, not %d", n)
		}
		return Retention{Count: n}, nil
	}
	if strings.HasSuffix(v, "d") {
		n, err := strconv.Atoi(strings.TrimSuffix(v, "d"))
		if err == nil && n >= 1 {
			return Retention{Age: time.Duration(n) * 24 * time.Hour}, nil
		}
	}
	return Retention{}, fmt.Errorf("must be a count like 7 or an age like 14d, not %q", v)
}

// DefaultPushAheadConcurrency is WALDEN_PUSH_AHEAD_CONCURRENCY's default
// when WALDEN_UPLOAD_CONCURRENCY is not set either.
const DefaultPushAheadConcurrency = 8

func posInt(env Env, name string, def int) (int, error) {
	v, ok := env(name)
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, bad(name, "must be a positive integer, not %q", v)
	}
	return n, nil
}

func size(env Env, name string, def int64) (int64, error) {
	v, ok := env(name)
	if !ok {
		return def, nil
	}
	n, err := ParseSize(v)
	if err != nil {
		return 0, bad(name, "%v", err)
	}
	return n, nil
}

// ParseSize accepts a byte count with an optional K/M/G/KiB/MiB/GiB suffix
// (all binary multiples).
func ParseSize(v string) (int64, error) {
	s := strings.TrimSpace(v)
	mult := int64(1)
	for _, u := range []struct {
		suf string
		m   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(s, u.suf) {
			s, mult = strings.TrimSuffix(s, u.suf), u.m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("not a size: %q (use bytes or K, M, G, KiB, MiB, GiB)", v)
	}
	return n * mult, nil
}

// ParseS3Endpoint splits WALE_S3_ENDPOINT (PROTO+STYLE://HOST[:PORT]).
func ParseS3Endpoint(v string) (proto, style, hostport string, err error) {
	i := strings.Index(v, "://")
	if i < 0 {
		return "", "", "", fmt.Errorf("must look like https+path://host:port, not %q", v)
	}
	scheme, rest := v[:i], v[i+3:]
	parts := strings.SplitN(scheme, "+", 2)
	if len(parts) != 2 || (parts[0] != "http" && parts[0] != "https") || (parts[1] != "path" && parts[1] != "virtualhost" && parts[1] != "subdomain") {
		return "", "", "", fmt.Errorf("URI scheme %q is invalid (an example of a valid scheme is https+virtualhost)", scheme)
	}
	if strings.Contains(rest, "@") {
		return "", "", "", fmt.Errorf("does not support username or password")
	}
	if strings.Contains(rest, "?") {
		return "", "", "", fmt.Errorf("does not support query parameters")
	}
	if j := strings.Index(rest, "/"); j >= 0 {
		if rest[j:] != "/" {
			return "", "", "", fmt.Errorf("does not support a URI path (path is %q)", rest[j:])
		}
		rest = rest[:j]
	}
	if rest == "" {
		return "", "", "", fmt.Errorf("names no host")
	}
	return parts[0], parts[1], rest, nil
}
