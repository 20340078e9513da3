package basebackup

import (
	"regexp"
	"strings"
)

// Delta backups: names, keys and the manifest parts that describe them.
// The format is documented in DELTA.md.

// deltaSentinelSuffix differs from WAL-E's and WAL-G's sentinel suffix, so
// that neither lists a delta as a backup it could restore.
const deltaSentinelSuffix = "_walden_delta_sentinel.json"

// FilesObject is the name of a backup's file list inside its directory,
// before the codec's extension.
const FilesObject = "walden_files.json"

var deltaNameRe = regexp.MustCompile(`^(base_[0-9A-F]{24}_[0-9A-F]{8})_D_([0-9A-F]{24}_[0-9A-F]{8})$`)

// DeltaName names the delta whose own start is that of own (a
// base_<SEG>_<OFF> name) and whose parent is parent (a full backup's or
// another delta's name).
func DeltaName(own, parent string) string {
	p := strings.TrimPrefix(parent[:nameLen], "base_")
	return own[:nameLen] + "_D_" + p
}

// ParseDeltaName splits a delta's name into its own base_<SEG>_<OFF> part
// and the base_<SEG>_<OFF> part of its parent. The parent's name can be a
// delta's too: its full name is in the sentinel (DeltaInfo.Parent).
func ParseDeltaName(name string) (own, parentStart string, ok bool) {
	m := deltaNameRe.FindStringSubmatch(name)
	if m == nil {
		return "", "", false
	}
	return m[1], "base_" + m[2], true
}

// IsDeltaName reports whether name is a delta's name.
func IsDeltaName(name string) bool { return deltaNameRe.MatchString(name) }

// DeltaSentinelKey is the key of a delta's sentinel, beside its directory.
func DeltaSentinelKey(name string) string { return Dir + name + deltaSentinelSuffix }

// FilesKey is the key of a backup's file list; ext is the codec's.
func FilesKey(name, ext string) string { return Dir + name + "/" + FilesObject + ext }

// FilesInfo describes a stored file list object.
type FilesInfo struct {
	Name       string `json:"name"` // inside the backup's directory, with extension
	StoredSize int64  `json:"stored_size"`
	SHA256     string `json:"sha256"`
	Count      int    `json:"count"`
}

// DeltaInfo links a delta to its parent.
type DeltaInfo struct {
	Parent               string `json:"parent"`
	ParentSentinelSHA256 string `json:"parent_sentinel_sha256"`
	ParentStartLSN       string `json:"parent_start_lsn"`
	Full                 string `json:"full"`
	Step                 int    `json:"step"`
}

// File list kinds.
const (
	FileWhole = "whole"
	FilePages = "pages"
)

// FileList is the content of walden_files.json.
type FileList struct {
	FormatVersion int         `json:"format_version"`
	BlockSize     int         `json:"block_size"`
	Files         []FileEntry `json:"files"`
}

// FileEntry is one regular file of a backup.
type FileEntry struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	Kind string `json:"kind"`
	Base string `json:"base"`
}

// DeltaMemberSuffix ends the tar name of a page-delta member.
const DeltaMemberSuffix = ".walden_delta"

// DeltaMagic opens a page-delta member.
const DeltaMagic = "WLDNDLT1"
