package gpg

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The fixture is generated once per test binary with the real gpg: a
// template GNUPGHOME that each test copies (so tests stay isolated yet do
// not pay for key generation), exported key files, and messages written by
// `gpg -e -z 0`, the command line WAL-E used.

const protPassphrase = "correct horse battery staple"

type keyInfo struct {
	fpr   string // primary fingerprint, upper-case hex
	id    string // primary long key id
	encID string // long id of the encryption subkey
	email string
}

type fixtureData struct {
	root      string // holds everything; removed at the end
	home      string // template GNUPGHOME: main, rsa, prot (with secrets)
	otherHome string // holds the only secret key of "other"

	main, rsa, prot, other keyInfo

	mainPub, mainPubAsc, mainSec, mainSecAsc, rsaSec, protSec, otherPub, allPub string

	plain                              []byte // 100 KiB, written by gpg into the messages below
	msgMain, msgRSA, msgProt, msgOther []byte
}

var fx fixtureData

func TestMain(m *testing.M) {
	// gpg is a hard requirement: a missing gpg must fail the run, not
	// silently skip the interoperability tests.
	if _, err := exec.LookPath("gpg"); err != nil {
		fmt.Fprintln(os.Stderr, "gpg tests need GnuPG installed:", err)
		os.Exit(1)
	}
	err := setupFixture()
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, "gpg fixture:", err)
	} else {
		code = m.Run()
	}
	if fx.root != "" {
		killAgent(fx.home)
		killAgent(fx.otherHome)
		os.RemoveAll(fx.root)
	}
	os.Exit(code)
}

// runGPG runs gpg with GNUPGHOME=home and returns stdout; the error carries
// stderr.
func runGPG(home string, stdin io.Reader, args ...string) ([]byte, error) {
	cmd := exec.Command("gpg", args...)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("gpg %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.Bytes(), nil
}

func killAgent(home string) {
	if home == "" {
		return
	}
	cmd := exec.Command("gpgconf", "--kill", "gpg-agent")
	cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
	_ = cmd.Run()
}

func genKey(home, uid, algo, passphrase string) (keyInfo, error) {
	if _, err := runGPG(home, nil, "--batch", "--pinentry-mode", "loopback", "--passphrase", passphrase,
		"--quick-gen-key", uid, algo, "default", "never"); err != nil {
		return keyInfo{}, err
	}
	email := uid[strings.Index(uid, "<")+1 : len(uid)-1]
	ki, err := keyInfoFor(home, email)
	if err != nil {
		return ki, err
	}
	if ki.encID == "" { // RSA "default" usage is sign+certify only
		if _, err := runGPG(home, nil, "--batch", "--pinentry-mode", "loopback", "--passphrase", passphrase,
			"--quick-add-key", ki.fpr, algo, "encr", "never"); err != nil {
			return ki, err
		}
		return keyInfoFor(home, email)
	}
	return ki, nil
}

func keyInfoFor(home, email string) (keyInfo, error) {
	out, err := runGPG(home, nil, "--batch", "--with-colons", "--list-keys", "<"+email+">")
	if err != nil {
		return keyInfo{}, err
	}
	ki := keyInfo{email: email}
	var last string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, ":")
		switch f[0] {
		case "pub":
			ki.id, last = f[4], "pub"
		case "sub":
			last = ""
			if strings.Contains(f[11], "e") {
				ki.encID, last = f[4], "sub"
			}
		case "fpr":
			if last == "pub" {
				ki.fpr = f[9]
			}
			last = ""
		}
	}
	if ki.fpr == "" || ki.id == "" {
		return ki, fmt.Errorf("cannot parse key listing for %s:\n%s", email, out)
	}
	return ki, nil
}

func setupFixture() (err error) {
	// Short paths: gpg-agent's sockets live in GNUPGHOME and a Unix
	// socket path is limited to 108 bytes.
	if fx.root, err = os.MkdirTemp("", "wgpg"); err != nil {
		return err
	}
	fx.home, fx.otherHome = filepath.Join(fx.root, "h"), filepath.Join(fx.root, "o")
	for _, d := range []string{fx.home, fx.otherHome} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return err
		}
	}
	if fx.main, err = genKey(fx.home, "walden test <test@walden.invalid>", "future-default", ""); err != nil {
		return err
	}
	if fx.rsa, err = genKey(fx.home, "walden rsa <rsa@walden.invalid>", "rsa2048", ""); err != nil {
		return err
	}
	if fx.prot, err = genKey(fx.home, "walden protected <protected@walden.invalid>", "future-default", protPassphrase); err != nil {
		return err
	}
	if fx.other, err = genKey(fx.otherHome, "walden other <other@walden.invalid>", "future-default", ""); err != nil {
		return err
	}

	export := func(home, name string, args ...string) (string, error) {
		out, err := runGPG(home, nil, append([]string{"--batch", "--pinentry-mode", "loopback"}, args...)...)
		if err != nil {
			return "", err
		}
		if len(out) == 0 {
			return "", fmt.Errorf("empty export for %s", name)
		}
		p := filepath.Join(fx.root, name)
		return p, os.WriteFile(p, out, 0o600)
	}
	steps := []struct {
		dst  *string
		home string
		name string
		args []string
	}{
		{&fx.mainPub, fx.home, "main.pub", []string{"--export", fx.main.fpr}},
		{&fx.mainPubAsc, fx.home, "main.pub.asc", []string{"--armor", "--export", fx.main.fpr}},
		{&fx.mainSec, fx.home, "main.sec", []string{"--passphrase", "", "--export-secret-keys", fx.main.fpr}},
		{&fx.mainSecAsc, fx.home, "main.sec.asc", []string{"--passphrase", "", "--armor", "--export-secret-keys", fx.main.fpr}},
		{&fx.rsaSec, fx.home, "rsa.sec", []string{"--passphrase", "", "--export-secret-keys", fx.rsa.fpr}},
		{&fx.protSec, fx.home, "prot.sec", []string{"--passphrase", protPassphrase, "--export-secret-keys", fx.prot.fpr}},
		{&fx.otherPub, fx.otherHome, "other.pub", []string{"--export", fx.other.fpr}},
		{&fx.allPub, fx.home, "all.pub", []string{"--export"}},
	}
	for _, s := range steps {
		if *s.dst, err = export(s.home, s.name, s.args...); err != nil {
			return err
		}
	}

	fx.plain = randomBytes(1, 100<<10)
	encrypt := func(home, fpr string) ([]byte, error) {
		return runGPG(home, bytes.NewReader(fx.plain), "--batch", "--trust-model", "always", "-e", "-z", "0", "-r", fpr)
	}
	if fx.msgMain, err = encrypt(fx.home, fx.main.fpr); err != nil {
		return err
	}
	if fx.msgRSA, err = encrypt(fx.home, fx.rsa.fpr); err != nil {
		return err
	}
	if fx.msgProt, err = encrypt(fx.home, fx.prot.fpr); err != nil {
		return err
	}
	if fx.msgOther, err = encrypt(fx.otherHome, fx.other.fpr); err != nil {
		return err
	}
	return nil
}

// useKeyring gives the test its own copy of the template keyring as
// GNUPGHOME and stops the gpg-agent the test's gpg calls started.
func useKeyring(t *testing.T) string {
	t.Helper()
	home := emptyHome(t)
	for _, name := range []string{"pubring.kbx", "trustdb.gpg"} {
		copyFile(t, filepath.Join(fx.home, name), filepath.Join(home, name))
	}
	priv := filepath.Join(home, "private-keys-v1.d")
	if err := os.Mkdir(priv, 0o700); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(fx.home, "private-keys-v1.d"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		copyFile(t, filepath.Join(fx.home, "private-keys-v1.d", e.Name()), filepath.Join(priv, e.Name()))
	}
	return home
}

// emptyHome sets GNUPGHOME to a fresh keyring without keys. It is not
// t.TempDir() because gpg-agent's socket path must stay short.
func emptyHome(t *testing.T) string {
	t.Helper()
	home, err := os.MkdirTemp("", "wgt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		killAgent(home)
		os.RemoveAll(home)
	})
	t.Setenv("GNUPGHOME", home)
	return home
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// gpgDecrypt runs the real `gpg -d` in the test's GNUPGHOME.
func gpgDecrypt(t *testing.T, msg io.Reader) []byte {
	t.Helper()
	out, err := runGPG(os.Getenv("GNUPGHOME"), msg, "-d", "-q", "--batch")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed)})
	_, _ = r.Read(b)
	return b
}

func writeFile(t *testing.T, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // umask must not decide
		t.Fatal(err)
	}
	return p
}
