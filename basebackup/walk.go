package basebackup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

type memberKind int

const (
	kindDir memberKind = iota
	kindFile
	kindSymlink
	kindData // bytes held in memory (backup_label, tablespace_map, pg_control)
)

// member is one tar member to be written. Its attributes are read when it
// is written, not when the walk found it, so files that change in between
// are stored as they are then.
type member struct {
	name   string // tar name: relative, "/" for the data directory, directories end in "/"
	path   string // where to read it
	kind   memberKind
	size   int64 // size when walked, for partitioning
	follow bool  // stat through a symlink (data directory, tablespace roots)
	data   []byte
	// parent is, in a delta, the parent chain's file list entry of a
	// page-diffed relation file; nil: the file is stored whole.
	parent *FileEntry
}

// walkResult is the whole file selection of one backup.
type walkResult struct {
	members []member
	spec    Spec
}

// walk selects what a base backup of pgdata stores, in directory order:
// the data directory itself first, then every entry not excluded
// (exclude.go), and each tablespace's contents through its pg_tblspc link.
// Entries that vanish while walking are skipped.
func walk(pgdata, specBase string) (*walkResult, error) {
	w := &walkResult{spec: Spec{BasePrefix: specBase, Tablespaces: []string{}, Locations: map[string]TablespaceLocation{}, hasTS: true}}
	fi, err := os.Stat(pgdata)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", pgdata)
	}
	w.members = append(w.members, member{name: "/", path: pgdata, kind: kindDir, follow: true})
	if err := w.dir(pgdata, ""); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *walkResult) dir(fsPath, rel string) error {
	ents, err := os.ReadDir(fsPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && rel != "" {
			return nil
		}
		return fmt.Errorf("read directory %s: %w", fsPath, err)
	}
	var unlogged map[string]bool
	if inRelationDir(rel + "/") {
		names := make([]string, len(ents))
		for i, e := range ents {
			names[i] = e.Name()
		}
		unlogged = unloggedSkips(names)
	}
	for _, e := range ents {
		childRel := e.Name()
		if rel != "" {
			childRel = rel + "/" + e.Name()
		}
		childPath := filepath.Join(fsPath, e.Name())
		info, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return fmt.Errorf("stat %s: %w", childPath, err)
		}
		mode := info.Mode()
		switch {
		case mode&fs.ModeSymlink != 0:
			if rel == "pg_tblspc" {
				ok, err := w.tablespace(childPath, childRel, e.Name())
				if err != nil {
					return err
				}
				if ok {
					continue
				}
			}
			w.members = append(w.members, member{name: childRel, path: childPath, kind: kindSymlink})
		case mode.IsDir():
			switch classify(childRel, true) {
			case skip:
			case dirEntry:
				w.members = append(w.members, member{name: childRel + "/", path: childPath, kind: kindDir})
			default:
				w.members = append(w.members, member{name: childRel + "/", path: childPath, kind: kindDir})
				if err := w.dir(childPath, childRel); err != nil {
					return err
				}
			}
		case mode.IsRegular():
			if unlogged[e.Name()] || classify(childRel, false) != include {
				continue
			}
			w.members = append(w.members, member{name: childRel, path: childPath, kind: kindFile, size: info.Size()})
		default:
			// Sockets, FIFOs and devices have no place in a data directory
			// and cannot be restored meaningfully; WAL-E crashed on sockets.
		}
	}
	return nil
}

// tablespace records the pg_tblspc/<oid> link as WAL-E's spec does and
// walks through it. It reports false for a link that does not lead to a
// directory, which is then stored as a plain symlink.
func (w *walkResult) tablespace(linkPath, rel, oid string) (bool, error) {
	fi, err := os.Stat(linkPath)
	if err != nil || !fi.IsDir() {
		return false, nil
	}
	target, err := os.Readlink(linkPath)
	if err != nil {
		return false, nil
	}
	if !strings.HasSuffix(target, "/") {
		target += "/"
	}
	w.spec.Tablespaces = append(w.spec.Tablespaces, oid)
	w.spec.Locations[oid] = TablespaceLocation{Loc: target, Link: rel}
	w.members = append(w.members, member{name: rel + "/", path: linkPath, kind: kindDir, follow: true})
	return true, w.dir(linkPath, rel)
}
