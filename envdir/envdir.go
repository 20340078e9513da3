// Package envdir reads a daemontools-style environment directory, so that
// `walden --envdir /etc/wal-e.d/env ...` sees what `envdir /etc/wal-e.d/env
// walden ...` would.
package envdir

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
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
	var out []Entry
	for _, de := range ents {
		name := de.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		if strings.Contains(name, "=") {
			return nil, fmt.Errorf("envdir %s: file name %q cannot be a variable name", dir, name)
		}
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("envdir %s: %s: %w", dir, name, unwrapPath(err))
		}
		if fi.IsDir() {
			continue
		}
		e, err := readOne(p)
		if err != nil {
			return nil, fmt.Errorf("envdir %s: %s: %w", dir, name, unwrapPath(err))
		}
		e.Name = name
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func readOne(p string) (Entry, error) {
	f, err := os.Open(p)
	if err != nil {
		return Entry{}, err
	}
	defer f.Close()
	r := bufio.NewReader(io.LimitReader(f, 1<<20))
	line, err := r.ReadBytes('\n')
	if err != nil && err != io.EOF {
		return Entry{}, err
	}
	if len(line) == 0 {
		return Entry{Unset: true}, nil
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimRight(line, " \t")
	line = bytes.ReplaceAll(line, []byte{0}, []byte{'\n'})
	return Entry{Value: string(line)}, nil
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
