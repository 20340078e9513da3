package main

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/walden-pg/walden/internal/pgtest"
)

// bbScratch is a directory under the temporary directory that the postgres
// user can use (t.TempDir nests under root-only directories), removed when
// the test ends.
func bbScratch(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "walden-bbtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	pgtest.Chown(t, dir)
	return dir
}

// bbEnvdir writes (or rewrites) a daemontools envdir readable by postgres;
// an empty value removes the variable's file.
func bbEnvdir(t *testing.T, dir string, vars map[string]string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for k, v := range vars {
		p := filepath.Join(dir, k)
		if v == "" {
			os.Remove(p)
			continue
		}
		if err := os.WriteFile(p, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pgtest.Chown(t, dir)
}

// bbResult is one walden run.
type bbResult struct {
	stdout, stderr string
	code           int
}

// bbWalden runs the walden binary as postgres with the envdir and extra
// environment.
func bbWalden(t *testing.T, bin, envdir string, env []string, args ...string) bbResult {
	t.Helper()
	cmd := pgtest.Command(t, env, "", bin, append([]string{"--envdir", envdir}, args...)...)
	return bbExec(t, cmd)
}

// bbWaldenAsRoot runs walden as this (root) process.
func bbWaldenAsRoot(t *testing.T, bin, envdir string, args ...string) bbResult {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--envdir", envdir}, args...)...)
	cmd.Dir = "/"
	return bbExec(t, cmd)
}

func bbExec(t *testing.T, cmd *exec.Cmd) bbResult {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := bbResult{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", strings.Join(cmd.Args, " "), err)
	}
	return r
}

// bbMust fails the test unless the run succeeded.
func bbMust(t *testing.T, r bbResult, what string) bbResult {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("%s: exit %d\nstdout:\n%s\nstderr:\n%s", what, r.code, r.stdout, bbTail(r.stderr, 4000))
	}
	return r
}

func bbTail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// bbRestoreCommand is restore_command calling walden through the envdir.
func bbRestoreCommand(bin, envdir string, prefetch int) string {
	return bin + " --envdir " + envdir + " wal-fetch -p " + string(rune('0'+prefetch)) + ` "%f" "%p"`
}

// bbCopyTree copies a directory tree (files, directories, mtimes).
func bbCopyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, in); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		return os.Chtimes(out, info.ModTime(), info.ModTime())
	})
	if err != nil {
		t.Fatal(err)
	}
	pgtest.Chown(t, dst)
}

// bbWriteFile writes a file and gives it to postgres.
func bbWriteFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	pgtest.Chown(t, path)
}

// bbOwnedByPostgres reports whether a file belongs to the postgres user.
func bbOwnedByPostgres(fi os.FileInfo) bool {
	u, err := user.Lookup("postgres")
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && strconv.Itoa(int(st.Uid)) == u.Uid
}

// bbGPGKey makes a fresh OpenPGP key with the real gpg and exports it to
// files postgres can read: WALDEN_GPG_PUBLIC_KEY_PATH and
// WALDEN_GPG_SECRET_KEY_PATH.
func bbGPGKey(t *testing.T, dir, name string) (pub, sec, email string) {
	t.Helper()
	home := filepath.Join(dir, "gh-"+name)
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	email = name + "@walden.test"
	gpg := func(out string, args ...string) {
		t.Helper()
		cmd := exec.Command("gpg", append([]string{"--homedir", home, "--batch", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("gpg %v: %v\n%s", args, err, stderr.String())
		}
		if out != "" {
			if err := os.WriteFile(out, stdout.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			pgtest.Chown(t, out)
		}
	}
	t.Cleanup(func() { exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run() })
	gpg("", "--quick-gen-key", "walden test <"+email+">", "default", "default", "never")
	pub, sec = filepath.Join(dir, name+".pub"), filepath.Join(dir, name+".sec")
	gpg(pub, "--export", email)
	gpg(sec, "--export-secret-keys", email)
	return pub, sec, email
}
