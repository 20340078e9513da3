package fastpath

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"os/user"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/walden-pg/walden/config"
	"golang.org/x/crypto/blake2b"
)

// Fingerprint digests everything that could make the agent's wal-push or
// wal-fetch behave differently from the client's own: the settings that
// matter to WAL (store, credentials, codec, key, log shape), the variables
// the storage SDKs and gpg read on their own, and the executable itself,
// so that an agent left running across an upgrade is not used.
//
// Agent-only settings (schedule, retention, listen addresses, PGDATA, log
// file, base backup tuning), per-run concurrency, and --terse and the log
// destinations, facility and format (sent with the request) are left out
// (fingerprintOmits), so they never force the slow path.
func Fingerprint(s *config.Settings) string {
	b := make([]byte, 0, 1024)
	b = binary.AppendUvarint(b, Version)
	b = appendSettings(b, s)
	for _, kv := range relevantEnv(s.GPG.Enabled) {
		b = appendField(b, kv)
	}
	b = appendField(b, executableID())
	sum := blake2b.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// appendSettings encodes the settings that can change what a served
// wal-push or wal-fetch does, written out field by field: encoding/json's
// reflection would cost the front more than the rest of its request.
// TestFingerprintCoversEverySettingButTheAgentsOwn fails when a field
// added to config.Settings is neither here nor listed as left out.
func appendSettings(b []byte, s *config.Settings) []byte {
	for _, v := range []string{
		s.Prefix.Raw, s.Prefix.Scheme, s.Prefix.Store, s.Prefix.Path, s.PrefixVar,
		s.S3.Region, s.S3.Endpoint, s.S3.AccessKeyID, s.S3.SecretAccessKey, s.S3.SessionToken, s.S3.StorageClass,
		s.GCSCredentialsFile, s.GPG.KeyID, s.GPG.PublicKeyPath, s.GPG.SecretKeyPath, s.GPG.PassphrasePath,
		s.Compression, s.Verify.Schedule, s.Verify.DrillSchedule, s.Verify.DrillDir,
	} {
		b = appendField(b, v)
	}
	for _, v := range []bool{s.HasPrefix, s.S3.InstanceProfile, s.GPG.Enabled, s.AllowPlaintext} {
		b = binary.AppendVarint(b, boolInt(v))
	}
	for _, v := range []int64{
		s.NetworkRateLimit, int64(s.Retries), int64(s.PushAheadConcurrency), int64(s.ProgressInterval),
		int64(s.BackupWALTimeout), int64(s.DeltaMaxSteps),
	} {
		b = binary.AppendVarint(b, v)
	}
	// nil and empty apart, as everywhere else.
	b = binary.AppendVarint(b, int64(len(s.Warnings))-boolInt(s.Warnings == nil))
	for _, w := range s.Warnings {
		b = appendField(b, w)
	}
	return b
}

func boolInt(v bool) int64 {
	if v {
		return 1
	}
	return 0
}

// appendField appends v with its length, so that fields cannot run into
// each other.
func appendField(b []byte, v string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(v))), v...)
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
