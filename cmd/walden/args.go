package main

import (
	"fmt"
	"strconv"
	"strings"
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

func findOpt(opts []opt, tok string) (opt, bool) {
	for _, o := range opts {
		if tok == o.long || (o.short != "" && tok == o.short) {
			return o, true
		}
	}
	return opt{}, false
}

// parseOptions parses options and positionals; options may come before or
// after positionals. stopAtPositional ends parsing at the first positional
// (for global options, which argparse only accepts before the subcommand).
func parseOptions(opts []opt, in []string, stopAtPositional bool) (*args, []string, error) {
	a := &args{flags: map[string]bool{}, vals: map[string]string{}}
	for i := 0; i < len(in); i++ {
		tok := in[i]
		if tok == "--" {
			a.pos = append(a.pos, in[i+1:]...)
			return a, nil, nil
		}
		if !strings.HasPrefix(tok, "-") || tok == "-" || isNegativeNumber(tok) {
			if stopAtPositional {
				return a, in[i:], nil
			}
			a.pos = append(a.pos, tok)
			continue
		}
		name, val, hasVal := tok, "", false
		if strings.HasPrefix(tok, "--") {
			if j := strings.IndexByte(tok, '='); j >= 0 {
				name, val, hasVal = tok[:j], tok[j+1:], true
			}
			// argparse accepts unambiguous prefixes of long options.
			if _, ok := findOpt(opts, name); !ok {
				var match []opt
				for _, o := range opts {
					if strings.HasPrefix(o.long, name) {
						match = append(match, o)
					}
				}
				if len(match) == 1 {
					name = match[0].long
				}
			}
		} else if len(tok) > 2 {
			name, val, hasVal = tok[:2], tok[2:], true
		}
		o, ok := findOpt(opts, name)
		if !ok {
			return nil, nil, fmt.Errorf("unrecognized arguments: %s", tok)
		}
		if len(a.pos) > 0 && a.lateOpt == "" {
			a.lateOpt = tok
		}
		if o.metavar == "" {
			if hasVal {
				return nil, nil, fmt.Errorf("argument %s: ignored explicit argument '%s'", optNames(o), val)
			}
			a.flags[o.long] = true
			continue
		}
		if !hasVal {
			if i+1 >= len(in) || (strings.HasPrefix(in[i+1], "-") && !isNegativeNumber(in[i+1])) {
				return nil, nil, fmt.Errorf("argument %s: expected one argument", optNames(o))
			}
			i++
			val = in[i]
		}
		if o.isInt {
			if _, err := strconv.Atoi(val); err != nil {
				return nil, nil, fmt.Errorf("argument %s: invalid int value: '%s'", optNames(o), val)
			}
		}
		a.vals[o.long] = val
	}
	return a, nil, nil
}

func isNegativeNumber(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil && strings.HasPrefix(s, "-")
}

func optNames(o opt) string {
	if o.short != "" {
		return o.long + "/" + o.short
	}
	return o.long
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
