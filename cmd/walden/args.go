package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/walden-pg/walden/internal/cli"
)

// opt is one option of WAL-E's argparse grammar.
type opt struct {
	long, short string
	metavar     string // "" for a flag without argument
	isInt       bool
	help        string
}

// args holds what a parse found.
type args struct {
	flags map[string]bool
	vals  map[string]string
	pos   []string
	// lateOpt is the first option given after a positional, for grammars
	// (delete) that take their options only before the mode word.
	lateOpt string
}

func (a *args) int(long string, def int) int {
	if v, ok := a.vals[long]; ok {
		n, _ := strconv.Atoi(v)
		return n
	}
	return def
}

func (a *args) str(long string) (string, bool) {
	v, ok := a.vals[long]
	return v, ok
}

// usageError is printed as argparse does: the usage line, then
// "<prog>: error: <msg>", on stderr, exit 2.
type usageError struct {
	usage string
	prog  string
	msg   string
}

func (e *usageError) Error() string { return e.msg }

// parseOptions parses options and positionals with the grammar both
// programs share (cli.Parse).
func parseOptions(opts []opt, in []string, stopAtPositional bool) (*args, []string, error) {
	co := make([]cli.Opt, len(opts))
	for i, o := range opts {
		co[i] = cli.Opt{Long: o.long, Short: o.short, Metavar: o.metavar, IsInt: o.isInt, Help: o.help}
	}
	p, rest, err := cli.Parse(co, in, stopAtPositional)
	if err != nil {
		return nil, nil, err
	}
	return &args{flags: p.Flags, vals: p.Vals, pos: p.Pos, lateOpt: p.LateOpt}, rest, nil
}

// optsOf is a shared option table in this package's form.
func optsOf(co []cli.Opt) []opt {
	opts := make([]opt, len(co))
	for i, o := range co {
		opts[i] = opt{long: o.Long, short: o.Short, metavar: o.Metavar, isInt: o.IsInt, help: o.Help}
	}
	return opts
}

func usageLine(prog string, opts []opt, positionals []string) string {
	var b strings.Builder
	b.WriteString("usage: " + prog + " [-h]")
	for _, o := range opts {
		n := o.long
		if o.short != "" {
			n = o.short
		}
		if o.metavar != "" {
			n += " " + o.metavar
		}
		b.WriteString(" [" + n + "]")
	}
	for _, p := range positionals {
		b.WriteString(" " + p)
	}
	return b.String()
}

func helpText(prog, desc string, opts []opt, positionals []string) string {
	var b strings.Builder
	b.WriteString(usageLine(prog, opts, positionals) + "\n")
	if desc != "" {
		b.WriteString("\n" + desc + "\n")
	}
	if len(positionals) > 0 {
		b.WriteString("\npositional arguments:\n")
		for _, p := range positionals {
			b.WriteString("  " + p + "\n")
		}
	}
	b.WriteString("\noptions:\n  -h, --help            show this help message and exit\n")
	for _, o := range opts {
		n := o.long
		if o.short != "" {
			n = o.short + ", " + o.long
		}
		if o.metavar != "" {
			n += " " + o.metavar
		}
		if len(n) > 20 {
			fmt.Fprintf(&b, "  %s\n  %-22s%s\n", n, "", o.help)
		} else {
			fmt.Fprintf(&b, "  %-22s%s\n", n, o.help)
		}
	}
	return b.String()
}
