package wal

import "github.com/walden-pg/walden/storage"

func isNotFound(err error) bool { return storage.IsNotFound(err) }
