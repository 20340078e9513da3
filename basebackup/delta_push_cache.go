package basebackup

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
)

// A host that pushes encrypted backups usually holds only the public key:
// it cannot decrypt its own backups' file lists. So each push keeps its
// plain file list beside the backup lock, with the SHA-256 of the object
// it stored; the next push uses it as its parent's list only when that
// hash is the one the parent's sentinel records. Losing it (a reboot
// empties /run) costs one full backup, never a wrong delta.

type cachedFileList struct {
	StoredSHA256 string   `json:"stored_sha256"`
	List         FileList `json:"list"`
}

// fileListCachePath is the cache of the data directory's last file list.
func fileListCachePath(pgdata string) (string, int, error) {
	_, lock, uid, err := lockPath(pgdata)
	if err != nil {
		return "", 0, err
	}
	return strings.TrimSuffix(lock, ".lock") + ".files.json", uid, nil
}

// saveFileListCache writes the cache, best effort: temp name, then rename.
func saveFileListCache(pgdata, storedSHA string, fl FileList) {
	path, uid, err := fileListCachePath(pgdata)
	if err != nil {
		return
	}
	data, err := json.Marshal(cachedFileList{StoredSHA256: storedSHA, List: fl})
	if err != nil {
		return
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".files-*.tmp")
	if err != nil {
		return
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil && os.Geteuid() == 0 {
		_ = os.Chown(tmp, uid, -1) // the service user replaces it next time
	}
	if werr != nil || os.Rename(tmp, path) != nil {
		os.Remove(tmp)
	}
}

// loadFileListCache returns the cached list when it is the plain content
// of the stored object whose SHA-256 is storedSHA.
func loadFileListCache(pgdata, storedSHA string) (*FileList, bool) {
	path, _, err := fileListCachePath(pgdata)
	if err != nil {
		return nil, false
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	var c cachedFileList
	if json.Unmarshal(data, &c) != nil || c.StoredSHA256 != storedSHA || c.List.BlockSize <= 0 {
		return nil, false
	}
	return &c.List, true
}
