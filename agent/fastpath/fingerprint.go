package fastpath

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/walden-pg/walden/config"
)

// Fingerprint digests everything that could make the agent's wal-push or
// wal-fetch behave differently from the client's own: the settings that
// matter to WAL (store, credentials, codec, key, log shape), the variables
// the storage SDKs and gpg read on their own, and the executable itself,
// so that an agent left running across an upgrade is not used.
//
// Agent-only settings (schedule, retention, listen addresses, PGDATA, log
// file, base backup tuning), per-run concurrency, and --terse and the log
// destinations, facility and format (sent with the request) are left out,
// so they never force the slow path.
func Fingerprint(s *config.Settings) string {
	c := *s
	c.Terse = false
	c.BackupSchedule, c.Retain, c.MetricsListen, c.PGData, c.SocketPath, c.LogFile = "", config.Retention{}, "", "", "", ""
	c.PartitionSize, c.DiskRateLimit = 0, 0
	c.UploadConcurrency, c.DownloadConcurrency = 0, 0
	// Sent with the request (LogShape): the agent's own logging (stderr
	// only under systemd) must not refuse archive_command's.
	c.LogDestinations, c.SyslogFacility, c.LogFormat = nil, "", ""
	b, err := json.Marshal(c)
	if err != nil {
		// Settings are plain data; should it ever fail, never match.
		return "unmarshalable:" + err.Error()
	}
	h := sha256.New()
	fmt.Fprintf(h, "v%d\n", Version)
	h.Write(b)
	h.Write([]byte{'\n'})
	for _, kv := range relevantEnv(s.GPG.Enabled) {
		h.Write([]byte(kv))
		h.Write([]byte{0})
	}
	h.Write([]byte(executableID()))
	return hex.EncodeToString(h.Sum(nil))
}

// relevantEnv lists the variables read outside config: AWS and Google SDK
// settings, proxies and CA files, HOME (shared credential files, keyring),
// the GnuPG home, and for encryption the gpg binary's search path.
//
// An unset or empty HOME counts as the user's home directory from the
// password database, where the SDKs and gpg look then: PostgreSQL started
// by pg_ctlcluster runs archive_command without HOME, the agent under
// systemd with it, and both read the same files.
func relevantEnv(gpg bool) []string {
	out := []string{""}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case k == "HOME":
			if v != "" {
				out[0] = kv
			}
		case strings.HasPrefix(k, "AWS_"), strings.HasPrefix(k, "GOOGLE_"), strings.HasPrefix(k, "GCE_"),
			k == "STORAGE_EMULATOR_HOST",
			strings.EqualFold(k, "HTTP_PROXY"), strings.EqualFold(k, "HTTPS_PROXY"), strings.EqualFold(k, "NO_PROXY"),
			k == "SSL_CERT_FILE", k == "SSL_CERT_DIR":
			out = append(out, kv)
		case k == "GNUPGHOME":
			// Encrypted objects decrypt with the keyring even when no key
			// is configured, so the keyring always matters.
			out = append(out, kv)
		case gpg && k == "PATH":
			out = append(out, kv)
		}
	}
	if out[0] == "" {
		// Read only when needed: the password database costs a front
		// call more than the rest of the fingerprint.
		out[0] = "HOME=" + passwdHome()
	}
	sort.Strings(out)
	return out
}

// passwdHome is the current user's home directory as the SDKs find it
// without HOME (user.Current).
func passwdHome() string {
	if u, err := user.Current(); err == nil {
		return u.HomeDir
	}
	return ""
}

// executableID identifies the running binary's file without reading it.
// /proc/self/exe reaches the inode actually running even after the file
// was replaced on disk.
var executableID = sync.OnceValue(func() string {
	fi, err := os.Stat("/proc/self/exe")
	if err != nil {
		exe, eerr := os.Executable()
		if eerr != nil {
			return "unknown"
		}
		if fi, err = os.Stat(exe); err != nil {
			return "unknown"
		}
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "unknown"
	}
	return fmt.Sprintf("%d:%d:%d:%d", st.Dev, st.Ino, fi.Size(), fi.ModTime().UnixNano())
})
