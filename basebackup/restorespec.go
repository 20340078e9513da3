package basebackup

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/walden-pg/walden/walelog"
)

// restoreSpec decides where tablespaces go (WAL-E 4.8). With no
// --restore-spec nothing is created and nothing verified; with SOURCE the
// backup's own spec is used, with FILE that file merged over it. The data
// goes into the directory given on the command line in every case (WAL-E
// used the backup's original directory with SOURCE, a bug).
func restoreSpec(pgdata, specArg string, s *Sentinel) (*Spec, error) {
	base := strings.TrimSuffix(pgdata, "/") + "/"
	if specArg == "" {
		return &Spec{BasePrefix: base, Locations: map[string]TablespaceLocation{}}, nil
	}
	spec := &Spec{Locations: map[string]TablespaceLocation{}}
	if s != nil && s.Spec != nil {
		*spec = *s.Spec
		spec.Locations = map[string]TablespaceLocation{}
		for k, v := range s.Spec.Locations {
			spec.Locations[k] = v
		}
	}
	if specArg != "SOURCE" {
		data, err := os.ReadFile(specArg)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, &walelog.UserError{
					Msg:    "Restore specification does not exist",
					Detail: "File not found: " + specArg,
					Hint:   `Provide valid json-formatted restoration specification, or pseudo-name "SOURCE" to restore using the specification from the backup progenitor.`,
				}
			}
			return nil, err
		}
		if err := mergeSpec(spec, data); err != nil {
			return nil, &walelog.UserError{Msg: "Restore specification is not valid", Detail: fmt.Sprintf("%s: %v", specArg, err)}
		}
	}
	spec.BasePrefix = base
	return spec, nil
}

// mergeSpec lays the keys of a restore-spec file over spec.
func mergeSpec(spec *Spec, data []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	var file Spec
	if err := json.Unmarshal(data, &file); err != nil {
		return err
	}
	if _, ok := m["tablespaces"]; ok {
		spec.Tablespaces = file.Tablespaces
		spec.hasTS = true
	}
	for _, oid := range spec.Tablespaces {
		if raw, ok := m[oid]; ok {
			var loc TablespaceLocation
			if err := json.Unmarshal(raw, &loc); err != nil {
				return fmt.Errorf("%s: %w", oid, err)
			}
			spec.Locations[oid] = loc
		}
	}
	return nil
}

// buildRestorePaths creates the data directory, pg_tblspc, each
// tablespace's directory and its link (WAL-E's _build_restore_paths,
// without failing on a link that already points where it should).
func buildRestorePaths(spec *Spec, owner func(string)) error {
	base := strings.TrimSuffix(spec.BasePrefix, "/")
	for _, d := range []string{base, filepath.Join(base, "pg_tblspc")} {
		if err := mkdirOwned(d, owner); err != nil {
			return err
		}
	}
	for _, oid := range spec.Tablespaces {
		loc := spec.Locations[oid]
		if loc.Loc == "" {
			return fmt.Errorf("restore spec: tablespace %s has no loc", oid)
		}
		link := loc.Link
		if link == "" {
			link = "pg_tblspc/" + oid
		}
		if err := mkdirOwned(strings.TrimSuffix(loc.Loc, "/"), owner); err != nil {
			return err
		}
		lp := filepath.Join(base, link)
		target := strings.TrimSuffix(loc.Loc, "/")
		if cur, err := os.Readlink(lp); err == nil && strings.TrimSuffix(cur, "/") == target {
			continue
		}
		if err := os.Symlink(target, lp); err != nil {
			return fmt.Errorf("restore spec: tablespace %s: %w", oid, err)
		}
		owner(lp)
	}
	return nil
}

func mkdirOwned(d string, owner func(string)) error {
	if fi, err := os.Stat(d); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", d)
		}
		return nil
	}
	if err := os.MkdirAll(d, 0o700); err != nil {
		return err
	}
	owner(d)
	return nil
}

// verifyRestorePaths is WAL-E's check that every tablespace of the spec
// has its link in pg_tblspc, leading to a directory.
func verifyRestorePaths(spec *Spec) error {
	if !spec.HasTablespacesKey() {
		return nil
	}
	var missing []string
	for _, oid := range spec.Tablespaces {
		p := filepath.Join(spec.BasePrefix, "pg_tblspc", oid)
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			missing = append(missing, oid)
			continue
		}
		if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
			missing = append(missing, oid)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return &walelog.UserError{
		Msg:    "Symlinks for some tablespaces not found or created.",
		Detail: "Symlinks for the following tablespaces were not found: " + strings.Join(missing, ", "),
		Hint:   "Ensure all required symlinks are created prior to running backup-fetch, or use --blind-restore to ignore symlinking. Alternatively supply a restore spec to have WAL-E create tablespace symlinks for you",
	}
}

// tablespaceDirs lists the links in pg_tblspc that lead to directories:
// members under them are written there.
func tablespaceDirs(pgdata string) map[string]string {
	out := map[string]string{}
	dir := filepath.Join(pgdata, "pg_tblspc")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return out
	}
	for _, e := range ents {
		if e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			if r, err := filepath.EvalSymlinks(p); err == nil {
				out[e.Name()] = r
			}
		}
	}
	return out
}
