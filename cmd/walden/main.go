// Command walden is a drop-in replacement for WAL-E: the same command line,
// configuration, storage layout and log lines, plus an agent.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/walden-pg/walden/config"
	"github.com/walden-pg/walden/internal/cli"
	"github.com/walden-pg/walden/walelog"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

// command is one subcommand: its grammar and what it runs.
type command struct {
	name        string
	desc        string
	opts        []opt
	positionals []string
	minPos      int
	maxPos      int  // -1: unlimited
	startMsg    bool // logs WAL-E's "starting WAL-E"
	noConfig    bool // runs without configuration (version)
	run         func(ctx context.Context, a *app, p *args) error

	// configFail is the exit status when the configuration cannot be
	// read; 0 means 1. wal-fetch must not answer "not found" for it.
	configFail int
}

func (c *command) configFailStatus() int {
	if c == nil || c.configFail == 0 {
		return 1
	}
	return c.configFail
}

var globalOpts = optsOf(cli.GlobalOptions)

// app is one invocation: its name, streams, settings and logger. Nothing
// here is global, so the agent can build one per request.
type app struct {
	prog       string // "wal-e" or "walden"
	walE       bool
	stdout     io.Writer
	stderr     io.Writer
	globalArgs []string // re-passed to prefetch helpers
	flags      config.Flags
	settings   *config.Settings
	log        *walelog.Logger
}

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

func run(argv []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	a.prog, a.walE = cli.Prog(argv[0])
	cmds := commands()
	usage := usageLine(a.prog, globalOpts, []string{"{" + cmdNames(cmds) + "} ..."})
	if cli.WantsHelp(argv[1:]) {
		fmt.Fprint(stdout, helpText(a.prog, "walden: continuous archiving for PostgreSQL, WAL-E compatible.\n\nsubcommands: "+cmdNames(cmds), globalOpts, []string{"SUBCOMMAND"}))
		return 0
	}
	g, err := cli.ParseGlobal(argv)
	if err != nil {
		return a.usageFail(usage, a.prog, err.Error())
	}
	rest := g.Rest
	a.globalArgs = g.Args
	a.flags = g.Flags()
	var cmd *command
	if len(rest) > 0 {
		for _, c := range cmds {
			if c.name == rest[0] {
				cmd = c
			}
		}
		if cmd == nil {
			return a.usageFail(usage, a.prog, fmt.Sprintf("argument subcommand: invalid choice: '%s' (choose from %s)", rest[0], quoteNames(cmds)))
		}
	}
	if cmd != nil && cmd.noConfig {
		return a.runCommand(cmd, rest[1:])
	}

	// Configuration: an envdir given by flag or variable is applied to the
	// process environment itself, exactly as `envdir DIR walden ...` would,
	// so every library (AWS SDK, libpq variables, gpg) sees the same values.
	dir, hasDir := g.Envdir(os.LookupEnv)
	a.log = a.newLogger(nil)
	if hasDir {
		if err := cli.ApplyEnvdir(dir); err != nil {
			a.log.Error(walelog.Main, oneLine(err.Error()), "", "")
			return cmd.configFailStatus()
		}
		if abs, err := filepath.Abs(dir); err == nil {
			a.globalArgs = cli.WithEnvdir(a.globalArgs, abs)
		}
	}
	s, err := config.Load(os.LookupEnv, a.flags)
	if err != nil {
		a.log.Error(walelog.Main, oneLine(err.Error()), "", "")
		return cmd.configFailStatus()
	}
	a.settings = s
	a.log = a.newLogger(s)
	for _, w := range s.Warnings {
		a.log.Warn(walelog.Main, w, "", "")
	}
	if cmd == nil {
		if !s.HasPrefix {
			return a.fail(noPrefixError())
		}
		a.log.Error(walelog.Main, "subcommand not implemented", "The submitted subcommand was None.", "Check for typos or consult "+a.prog+" --help.")
		return 127
	}
	return a.runCommand(cmd, rest[1:])
}

func (a *app) runCommand(cmd *command, in []string) int {
	prog := a.prog + " " + cmd.name
	usage := usageLine(prog, cmd.opts, cmd.positionals)
	for _, t := range in {
		if t == "-h" || t == "--help" {
			fmt.Fprint(a.stdout, helpText(prog, cmd.desc, cmd.opts, cmd.positionals))
			return 0
		}
	}
	p, _, err := parseOptions(cmd.opts, in, false)
	if err != nil {
		return a.usageFail(usage, prog, err.Error())
	}
	if len(p.pos) < cmd.minPos {
		missing := cmd.positionals[len(p.pos):cmd.minPos]
		return a.usageFail(usage, prog, "the following arguments are required: "+strings.Join(missing, ", "))
	}
	if cmd.maxPos >= 0 && len(p.pos) > cmd.maxPos {
		return a.usageFail(usage, prog, "unrecognized arguments: "+strings.Join(p.pos[cmd.maxPos:], " "))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if cmd.startMsg {
		a.log.Info(walelog.Main, "starting WAL-E", fmt.Sprintf("The subcommand is %q.", cmd.name), "")
	}
	if err := cmd.run(ctx, a, p); err != nil {
		return a.fail(err)
	}
	return 0
}

// exitStatus lets a command choose its exit status without logging.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func (a *app) fail(err error) int {
	var es exitStatus
	if errors.As(err, &es) {
		return int(es)
	}
	var ue *walelog.UserError
	if errors.As(err, &ue) {
		lvl := walelog.Error
		if ue.Critical {
			lvl = walelog.Critical
		}
		a.log.Log(walelog.Record{Logger: walelog.Main, Level: lvl, Msg: ue.Msg, Detail: ue.Detail, Hint: ue.Hint})
		return ue.Status()
	}
	var ce *config.Error
	if errors.As(err, &ce) {
		a.log.Error(walelog.Main, oneLine(err.Error()), "", "")
		return 1
	}
	if errors.Is(err, config.ErrNoPrefix) {
		return a.fail(noPrefixError())
	}
	a.log.Error(walelog.Main, oneLine(err.Error()), "", "")
	return 1
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

func noPrefixError() *walelog.UserError {
	return &walelog.UserError{
		Msg:  "no storage prefix defined",
		Hint: "Either set one of the --file-prefix, --gs-prefix, --s3-prefix or --wabs-prefix options or define one of the WALE_FILE_PREFIX, WALE_GS_PREFIX, WALE_S3_PREFIX, WALE_SWIFT_PREFIX or WALE_WABS_PREFIX, environment variables.",
	}
}

func (a *app) usageFail(usage, prog, msg string) int {
	fmt.Fprintf(a.stderr, "%s\n%s: error: %s\n", usage, prog, msg)
	return 2
}

func (a *app) newLogger(s *config.Settings) *walelog.Logger {
	return walelog.New(logOptions(a.stderr, a.flags.Terse, s))
}

// logOptions is the logger of a command run with settings s (nil: before
// they are read, when only stderr hears it).
func logOptions(stderr io.Writer, terse bool, s *config.Settings) walelog.Options {
	o := walelog.Options{Stderr: stderr, Terse: terse}
	if s != nil {
		o.Destinations, o.Facility, o.Format = s.LogDestinations, s.SyslogFacility, s.LogFormat
	} else {
		o.Destinations = []string{"stderr"}
	}
	return o
}

func cmdNames(cmds []*command) string {
	var n []string
	for _, c := range cmds {
		n = append(n, c.name)
	}
	return strings.Join(n, ",")
}

func quoteNames(cmds []*command) string {
	var n []string
	for _, c := range cmds {
		n = append(n, "'"+c.name+"'")
	}
	return strings.Join(n, ", ")
}

// notImplemented is the answer of subcommands that are not built yet.
func notImplemented(name string) func(context.Context, *app, *args) error {
	return func(context.Context, *app, *args) error {
		return &walelog.UserError{Msg: name + " is not implemented yet"}
	}
}
