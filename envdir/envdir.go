// Package envdir reads a daemontools-style environment directory, so that
// `walden --envdir /etc/wal-e.d/env ...` sees what `envdir /etc/wal-e.d/env
// walden ...` would.
package envdir

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// Entry is one file of the directory. Unset is true for an empty file, which
// removes the variable from the environment.
type Entry struct {
	Name  string
	Value string
	Unset bool
}

// Read parses every file in dir with envdir's rules: the file name is the
// variable; the value is the first line with trailing spaces and tabs
// removed and NUL bytes turned into newlines; an empty file unsets it.
// Dot files are skipped, as envdir does.
func Read(dir string) ([]Entry, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("envdir %s: %w", dir, unwrapPath(err))
	}
	out := make([]Entry, 0, len(ents))
	var buf []byte
	for _, de := range ents {
		name := de.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		if strings.Contains(name, "=") {
			return nil, fmt.Errorf("envdir %s: file name %q cannot be a variable name", dir, name)
		}
		p := filepath.Join(dir, name)
		if !de.Type().IsRegular() {
			// A link (secrets often are) or an unknown type: what it
			// points to decides.
			fi, err := os.Stat(p)
			if err != nil {
				return nil, fmt.Errorf("envdir %s: %s: %w", dir, name, unwrapPath(err))
			}
			if fi.IsDir() {
				continue
			}
		}
		var e Entry
		e, buf, err = readOne(p, buf)
		if err != nil {
			return nil, fmt.Errorf("envdir %s: %s: %w", dir, name, err)
		}
		e.Name = name
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// maxLine bounds the first line read from one file.
const maxLine = 1 << 20

// readOne reads p's first line into buf (returned, perhaps grown, for the
// next file). Plain system calls: archive_command's front reads the
// envdir on every call, and os.File would set up the runtime's poller and
// a buffer per file for a few short reads.
func readOne(p string, buf []byte) (Entry, []byte, error) {
	fd, err := syscall.Open(p, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return Entry{}, buf, err
	}
	defer syscall.Close(fd)
	if cap(buf) == 0 {
		buf = make([]byte, 0, 4096)
	}
	line := buf[:0]
	for {
		if len(line) == cap(line) {
			if len(line) >= maxLine {
				break
			}
			line = append(line, 0)[:len(line)]
		}
		n, err := syscall.Read(fd, line[len(line):cap(line)])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return Entry{}, line, err
		}
		if n == 0 {
			break
		}
		line = line[:len(line)+n]
		if i := bytes.IndexByte(line[len(line)-n:], '\n'); i >= 0 {
			line = line[:len(line)-n+i+1]
			break
		}
	}
	if len(line) > maxLine {
		line = line[:maxLine]
	}
	if len(line) == 0 {
		return Entry{Unset: true}, line, nil
	}
	v := bytes.TrimSuffix(line, []byte("\n"))
	v = bytes.TrimRight(v, " \t")
	return Entry{Value: strings.ReplaceAll(string(v), "\x00", "\n")}, line, nil
}

// Apply sets and unsets the entries in env (a name→value map).
func Apply(env map[string]string, entries []Entry) {
	for _, e := range entries {
		if e.Unset {
			delete(env, e.Name)
		} else {
			env[e.Name] = e.Value
		}
	}
}

func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
