package cli

import (
	"reflect"
	"testing"
)

// TestGlobalSetUpAsBothProgramsNeedIt pins what the front relies on to
// build the same request as the full program: the global arguments as
// given, the envdir rewritten to an absolute path (added when it came from
// WALDEN_ENVDIR), --envdir winning over WALDEN_ENVDIR, and help seen only
// before the subcommand.
func TestGlobalSetUpAsBothProgramsNeedIt(t *testing.T) {
	g, err := ParseGlobal([]string{"/usr/lib/walden/bin/wal-e", "--terse", "--envdir=env", "wal-push", "-p", "4", "pg_wal/x"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g.Args, []string{"--terse", "--envdir=env"}) || !reflect.DeepEqual(g.Rest, []string{"wal-push", "-p", "4", "pg_wal/x"}) {
		t.Errorf("args %q, rest %q", g.Args, g.Rest)
	}
	if !g.Flags().Terse {
		t.Error("--terse not in the flags")
	}
	lookup := func(string) (string, bool) { return "/from/variable", true }
	if dir, ok := g.Envdir(lookup); !ok || dir != "env" {
		t.Errorf("envdir %q %v, want the flag's", dir, ok)
	}
	if got := WithEnvdir(g.Args, "/abs/env"); !reflect.DeepEqual(got, []string{"--terse", "--envdir=/abs/env"}) {
		t.Errorf("WithEnvdir: %q", got)
	}
	if got := WithEnvdir([]string{"--terse"}, "/abs/env"); !reflect.DeepEqual(got, []string{"--terse", "--envdir", "/abs/env"}) {
		t.Errorf("WithEnvdir without the flag: %q", got)
	}
	if prog, walE := Prog("/usr/lib/walden/bin/wal-e"); prog != "wal-e" || !walE {
		t.Errorf("Prog: %q %v", prog, walE)
	}
	if WantsHelp([]string{"wal-push", "--help"}) || !WantsHelp([]string{"--terse", "-h"}) {
		t.Error("WantsHelp: help after the subcommand is the subcommand's")
	}
	if _, err := ParseGlobal([]string{"walden", "-k", "AKID", "--aws-instance-profile", "version"}); err == nil ||
		err.Error() != "argument --aws-instance-profile: not allowed with argument -k/--aws-access-key-id" {
		t.Errorf("conflicting credentials: %v", err)
	}
	p, _, err := Parse(WalPushOptions, []string{"-p8", "pg_wal/x"}, false)
	if err != nil || p.Vals["--pool-size"] != "8" || !reflect.DeepEqual(p.Pos, []string{"pg_wal/x"}) {
		t.Errorf("wal-push -p8: %+v %v", p, err)
	}
}
