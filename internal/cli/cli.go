// Package cli is walden's command line as both programs read it: the full
// program (cmd/walden) and the light front (cmd/walden-front) that is
// installed as /usr/bin/walden. It holds WAL-E's argparse-style grammar,
// the global options, wal-push's options and the set-up that precedes
// every command (program name, envdir, flags for config.Load).
//
// The front links this package and must start in a few milliseconds:
// import nothing here that pulls in storage SDKs, gRPC or metrics.
package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/walden-pg/walden/config"
	"github.com/walden-pg/walden/envdir"
)

// Opt is one option of WAL-E's argparse grammar.
type Opt struct {
	Long, Short string
	Metavar     string // "" for a flag without argument
	IsInt       bool
	Help        string
}

// Args holds what a parse found.
type Args struct {
	Flags map[string]bool
	Vals  map[string]string
	Pos   []string
	// LateOpt is the first option given after a positional, for grammars
	// (delete) that take their options only before the mode word.
	LateOpt string
}

func findOpt(opts []Opt, tok string) (Opt, bool) {
	for _, o := range opts {
		if tok == o.Long || (o.Short != "" && tok == o.Short) {
			return o, true
		}
	}
	return Opt{}, false
}

// Parse parses options and positionals; options may come before or after
// positionals. stopAtPositional ends parsing at the first positional (for
// global options, which argparse only accepts before the subcommand) and
// returns the rest. Errors are argparse's messages.
func Parse(opts []Opt, in []string, stopAtPositional bool) (*Args, []string, error) {
	a := &Args{Flags: map[string]bool{}, Vals: map[string]string{}}
	for i := 0; i < len(in); i++ {
		tok := in[i]
		if tok == "--" {
			a.Pos = append(a.Pos, in[i+1:]...)
			return a, nil, nil
		}
		if !strings.HasPrefix(tok, "-") || tok == "-" || isNegativeNumber(tok) {
			if stopAtPositional {
				return a, in[i:], nil
			}
			a.Pos = append(a.Pos, tok)
			continue
		}
		name, val, hasVal := tok, "", false
		if strings.HasPrefix(tok, "--") {
			if j := strings.IndexByte(tok, '='); j >= 0 {
				name, val, hasVal = tok[:j], tok[j+1:], true
			}
			// argparse accepts unambiguous prefixes of long options.
			if _, ok := findOpt(opts, name); !ok {
				var match []Opt
				for _, o := range opts {
					if strings.HasPrefix(o.Long, name) {
						match = append(match, o)
					}
				}
				if len(match) == 1 {
					name = match[0].Long
				}
			}
		} else if len(tok) > 2 {
			name, val, hasVal = tok[:2], tok[2:], true
		}
		o, ok := findOpt(opts, name)
		if !ok {
			return nil, nil, fmt.Errorf("unrecognized arguments: %s", tok)
		}
		if len(a.Pos) > 0 && a.LateOpt == "" {
			a.LateOpt = tok
		}
		if o.Metavar == "" {
			if hasVal {
				return nil, nil, fmt.Errorf("argument %s: ignored explicit argument '%s'", OptNames(o), val)
			}
			a.Flags[o.Long] = true
			continue
		}
		if !hasVal {
			if i+1 >= len(in) || (strings.HasPrefix(in[i+1], "-") && !isNegativeNumber(in[i+1])) {
				return nil, nil, fmt.Errorf("argument %s: expected one argument", OptNames(o))
			}
			i++
			val = in[i]
		}
		if o.IsInt {
			if _, err := strconv.Atoi(val); err != nil {
				return nil, nil, fmt.Errorf("argument %s: invalid int value: '%s'", OptNames(o), val)
			}
		}
		a.Vals[o.Long] = val
	}
	return a, nil, nil
}

func isNegativeNumber(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil && strings.HasPrefix(s, "-")
}

// OptNames is the option as argparse names it in errors: "--long/-s".
func OptNames(o Opt) string {
	if o.Short != "" {
		return o.Long + "/" + o.Short
	}
	return o.Long
}

// WantsHelp reports whether -h or --help comes before the first word that
// is not an option, where argparse answers it before anything else.
func WantsHelp(in []string) bool {
	for _, t := range in {
		if t == "-h" || t == "--help" {
			return true
		}
		if !strings.HasPrefix(t, "-") {
			return false
		}
	}
	return false
}

// GlobalOptions are the options before the subcommand, WAL-E's and walden's.
var GlobalOptions = []Opt{
	{Long: "--aws-access-key-id", Short: "-k", Metavar: "AWS_ACCESS_KEY_ID", Help: "public AWS access key; can also be defined in the AWS_ACCESS_KEY_ID environment variable"},
	{Long: "--aws-instance-profile", Help: "use the IAM instance profile (or the SDK's default credential chain)"},
	{Long: "--gs-access-key-id", Metavar: "GS_ACCESS_KEY_ID", Help: "accepted and ignored, as WAL-E did"},
	{Long: "--wabs-account-name", Short: "-a", Metavar: "WABS_ACCOUNT_NAME", Help: "accepted for compatibility; Azure is not supported"},
	{Long: "--s3-prefix", Metavar: "S3_PREFIX", Help: "storage prefix (the URL scheme picks the backend)"},
	{Long: "--wabs-prefix", Metavar: "WABS_PREFIX", Help: "storage prefix"},
	{Long: "--gs-prefix", Metavar: "GS_PREFIX", Help: "storage prefix"},
	{Long: "--file-prefix", Metavar: "FILE_PREFIX", Help: "storage prefix"},
	{Long: "--gpg-key-id", Metavar: "GPG_KEY_ID", Help: "GPG key id to encrypt with (also WALE_GPG_KEY_ID)"},
	{Long: "--terse", Help: "only log warnings and errors"},
	{Long: "--envdir", Metavar: "DIR", Help: "read settings from a daemontools envdir (also WALDEN_ENVDIR)"},
}

// WalPushOptions are wal-push's options.
var WalPushOptions = []Opt{
	{Long: "--pool-size", Short: "-p", Metavar: "POOL_SIZE", IsInt: true, Help: "upload up to this many .ready segments at once (default 32)"},
}

// WalFetchOptions are wal-fetch's options.
var WalFetchOptions = []Opt{
	{Long: "--prefetch", Short: "-p", Metavar: "PREFETCH", IsInt: true, Help: "prefetch this many following segments in the background (default 8)"},
}

// Prog is the program's name for messages, "walden" or "wal-e": invoked
// through a link named wal-e, walden behaves as WAL-E.
func Prog(argv0 string) (prog string, walE bool) {
	if filepath.Base(argv0) == "wal-e" {
		return "wal-e", true
	}
	return "walden", false
}

// Global is what precedes the subcommand.
type Global struct {
	Opts *Args
	// Rest is the subcommand and its arguments.
	Rest []string
	// Args are the global arguments as given, for programs started on the
	// same configuration (prefetch helpers, restore_command).
	Args []string
}

// ParseGlobal parses the global options of argv[1:]. Errors are argparse's
// messages, to print under the usage line.
func ParseGlobal(argv []string) (*Global, error) {
	g, rest, err := Parse(GlobalOptions, argv[1:], true)
	if err != nil {
		return nil, err
	}
	if g.Flags["--aws-instance-profile"] && g.Vals["--aws-access-key-id"] != "" {
		return nil, fmt.Errorf("argument --aws-instance-profile: not allowed with argument -k/--aws-access-key-id")
	}
	return &Global{Opts: g, Rest: rest, Args: argv[1 : len(argv)-len(rest)]}, nil
}

// Flags are the settings the global options give config.Load.
func (g *Global) Flags() config.Flags {
	v := g.Opts.Vals
	f := config.Flags{
		FilePrefix: v["--file-prefix"], GSPrefix: v["--gs-prefix"], S3Prefix: v["--s3-prefix"], WABSPrefix: v["--wabs-prefix"],
		AWSAccessKeyID: v["--aws-access-key-id"], AWSInstanceProfile: g.Opts.Flags["--aws-instance-profile"], Terse: g.Opts.Flags["--terse"],
	}
	if k, ok := v["--gpg-key-id"]; ok {
		f.GPGKeyID = &k
	}
	return f
}

// Envdir is the envdir to read settings from: --envdir, else WALDEN_ENVDIR.
func (g *Global) Envdir(lookup func(string) (string, bool)) (dir string, ok bool) {
	if dir, ok := g.Opts.Vals["--envdir"]; ok {
		return dir, true
	}
	return lookup("WALDEN_ENVDIR")
}

// ApplyEnvdir sets and unsets the process environment from the envdir at
// dir, exactly as `envdir DIR walden ...` would, so that every library (AWS
// SDK, libpq variables, gpg) sees the same values.
func ApplyEnvdir(dir string) error {
	ents, err := envdir.Read(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Unset {
			os.Unsetenv(e.Name)
		} else {
			os.Setenv(e.Name, e.Value)
		}
	}
	return nil
}

// WithEnvdir rewrites --envdir in args to the absolute path abs (adding it
// when the envdir came from WALDEN_ENVDIR), so that helpers started from
// another directory read the same envdir.
func WithEnvdir(args []string, abs string) []string {
	out := make([]string, 0, len(args)+2)
	found := false
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "--envdir" && i+1 < len(args):
			out = append(out, "--envdir", abs)
			i++
			found = true
		case strings.HasPrefix(args[i], "--envdir="):
			out = append(out, "--envdir="+abs)
			found = true
		default:
			out = append(out, args[i])
		}
	}
	if !found {
		out = append(out, "--envdir", abs)
	}
	return out
}
