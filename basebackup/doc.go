// Package basebackup takes, lists, restores and deletes base backups in
// WAL-E's storage layout (basebackups_005/): backup-push, backup-fetch,
// backup-list, delete and the one-command point-in-time restore.
//
// A backup is a directory basebackups_005/base_<SEG>_<OFFSET>/ holding
// extended_version.txt and tar_partitions/part_%08d.tar<ext>, plus a
// sentinel JSON beside it that is written last: a backup exists only once
// its sentinel does.
package basebackup
