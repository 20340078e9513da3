//go:build !walden_wal

package main

import (
	"context"
	"fmt"

	"github.com/walden-pg/walden/basebackup"
	"github.com/walden-pg/walden/walelog"
)

var backupListCmd = &command{
	name: "backup-list", desc: "list base backups (tab-separated, CRLF, as WAL-E)",
	opts:        []opt{{long: "--detail", help: "read each backup's sentinel to fill the stop and size columns (and, when the store holds delta backups, a parent column)"}},
	positionals: []string{"QUERY"}, minPos: 0, maxPos: 1,
	startMsg: true,
	run: func(ctx context.Context, a *app, p *args) error {
		st, err := a.store(ctx)
		if err != nil {
			return err
		}
		query := ""
		if len(p.pos) > 0 {
			query = p.pos[0]
		}
		rows, ok, lerr := basebackup.ListRows(ctx, st, a.settings.Prefix.Scheme, query, p.flags["--detail"], func(name, why string) {
			a.log.Warn(walelog.WaldenName, "broken base backup", fmt.Sprintf("Backup %s cannot be restored: %s.", name, why),
				"It is listed but never chosen as LATEST; delete it or restore an older one.")
		})
		if err := basebackup.WriteTSV(a.stdout, rows); err != nil {
			return err
		}
		if lerr != nil {
			return lerr
		}
		if !ok {
			return &walelog.UserError{Msg: "invalid backup query submitted", Detail: `The submitted query operator was "` + query + `."`}
		}
		return nil
	},
}
