// Command walden-front is installed as /usr/bin/walden in front of the full
// program (/usr/lib/walden/walden). PostgreSQL runs archive_command once
// per WAL segment, and the full program's start-up alone (initialising
// every storage SDK it links) costs tens of milliseconds. When the agent
// runs, it usually holds the segment already (push-ahead, or its prefetch
// cache for restore_command), so this small program asks it over the
// fast-path socket and prints its answer. Otherwise it replaces itself,
// same argv and environment, with the WAL program (walden-wal beside the
// full program) when that can do the work, a wal-push or wal-fetch for an
// S3 or file store, and with the full program in every other case.
//
// It must link nothing heavy: no cloud SDKs, gRPC or metrics, and not
// even encoding/json, net or the logger, whose initialisation alone is a
// tenth of a call here (TestFrontLinksNoHeavyPackages holds it to that).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/walden-pg/walden/agent/fastpath"
	"github.com/walden-pg/walden/config"
	"github.com/walden-pg/walden/internal/cli"
	"github.com/walden-pg/walden/wal/walname"
)

// coreVar names the full program explicitly (tests, unusual layouts).
const coreVar = "WALDEN_CORE"

// served are the commands the front can hand to the agent, with the
// grammar of their arguments.
var served = map[string]grammar{
	"wal-push":  {opts: cli.WalPushOptions, minPos: 1, maxPos: 1},
	"wal-fetch": {opts: cli.WalFetchOptions, minPos: 2, maxPos: 2},
}

type grammar struct {
	opts           []cli.Opt
	minPos, maxPos int
}

func main() {
	// The environment as given, before any envdir is read into it: the
	// full program must start with exactly this.
	env := os.Environ()
	os.Exit(run(os.Args, env, os.Stdout, os.Stderr))
}

func run(argv, env []string, stdout, stderr io.Writer) int {
	prog, _ := cli.Prog(argv[0])
	cmd := commandOf(argv)
	core, err := findCore(os.Getenv(coreVar))
	if err != nil {
		fmt.Fprintf(stderr, "%s: cannot find the full walden program: %v\n", prog, err)
		return missingCoreStatus(cmd)
	}
	status, handled, walOK := handOff(argv, cmd, core, stdout, stderr)
	if handled {
		return status
	}
	if walOK {
		if w, ok := walProgram(core); ok {
			err = syscall.Exec(w, argv, env)
			// The full program does the same work: a broken WAL program
			// must not stop archiving or recovery, but it is said.
			fmt.Fprintf(stderr, "%s: cannot run walden's WAL program %s (%v); running the full program\n", prog, w, err)
		}
	}
	err = syscall.Exec(core, argv, env)
	fmt.Fprintf(stderr, "%s: cannot run the full walden program %s: %v\n", prog, core, err)
	return missingCoreStatus(cmd)
}

// walProgramName is the WAL program's file name, in the full program's
// directory: /usr/lib/walden/walden-wal as packaged, dist/walden-wal in a
// build tree. It is the full program built with the walden_wal tag:
// wal-push, wal-fetch and wal-prefetch for S3 and file stores, which
// starts in about half the full program's time.
const walProgramName = "walden-wal"

// walProgram is the WAL program beside the full program core. Without
// one (an older layout, a test's lone build), the full program does it.
func walProgram(core string) (string, bool) {
	w := filepath.Join(filepath.Dir(core), walProgramName)
	fi, err := os.Stat(w)
	if err != nil || !fi.Mode().IsRegular() {
		return "", false
	}
	return w, true
}

// missingCoreStatus is the exit status when the full program cannot run.
// wal-fetch's 1 would tell PostgreSQL the segment is missing, ending
// recovery early: a broken installation must stop it instead.
func missingCoreStatus(cmd string) int {
	if cmd == "wal-fetch" {
		return 200
	}
	return 2
}

// commandOf is the subcommand of argv, "" when the global options do not
// parse.
func commandOf(argv []string) string {
	if cli.WantsHelp(argv[1:]) {
		return ""
	}
	g, err := cli.ParseGlobal(argv)
	if err != nil || len(g.Rest) == 0 {
		return ""
	}
	return g.Rest[0]
}

// findCore locates the full program: $WALDEN_CORE when set, else
// ../lib/walden/walden from this program's directory (the package's
// layout), else walden-core beside it (a build tree).
func findCore(explicit string) (string, error) {
	self, err := os.Executable()
	if err == nil {
		self, err = filepath.EvalSymlinks(self)
	}
	if err != nil {
		return "", fmt.Errorf("cannot find this program's own path: %v", err)
	}
	var candidates []string
	if explicit != "" {
		candidates = []string{explicit}
	} else {
		dir := filepath.Dir(self)
		candidates = []string{filepath.Join(dir, "..", "lib", "walden", "walden"), filepath.Join(dir, "walden-core")}
	}
	for _, c := range candidates {
		fi, err := os.Stat(c)
		if err != nil || fi.IsDir() {
			continue
		}
		if me, err := os.Stat(self); err == nil && os.SameFile(fi, me) {
			// Running ourselves would loop for ever.
			return "", fmt.Errorf("%s is this front program, not the full program", c)
		}
		return c, nil
	}
	if explicit != "" {
		return "", fmt.Errorf("%s=%s does not exist", coreVar, explicit)
	}
	return "", fmt.Errorf("neither %s nor %s exists", candidates[0], candidates[1])
}

// handOff does what the full program does for a command the agent can
// serve, up to the agent's answer. handled is false whenever another
// program must run instead: another command, anything the full program
// would report itself (usage errors, help, configuration errors or
// warnings), no agent, a refusal or a broken connection. walOK says that
// the WAL program may run it: the arguments and configuration were read
// without a word to say about them, the agent (if one is configured) was
// asked, and the store is not GCS, which that program leaves out.
func handOff(argv []string, cmd, core string, stdout, stderr io.Writer) (status int, handled, walOK bool) {
	gr, ok := served[cmd]
	if !ok || cli.WantsHelp(argv[1:]) {
		return 0, false, false
	}
	g, err := cli.ParseGlobal(argv)
	if err != nil {
		return 0, false, false
	}
	in := g.Rest[1:]
	for _, t := range in {
		if t == "-h" || t == "--help" {
			return 0, false, false
		}
	}
	p, _, err := cli.Parse(gr.opts, in, false)
	if err != nil || len(p.Pos) < gr.minPos || len(p.Pos) > gr.maxPos {
		return 0, false, false
	}
	flags := g.Flags()
	if dir, ok := g.Envdir(os.LookupEnv); ok {
		if err := cli.ApplyEnvdir(dir); err != nil {
			return 0, false, false
		}
		if abs, err := filepath.Abs(dir); err == nil {
			g.Args = cli.WithEnvdir(g.Args, abs)
		}
	}
	s, err := config.Load(os.LookupEnv, flags)
	if err != nil || len(s.Warnings) > 0 || !s.HasPrefix {
		return 0, false, false
	}
	walOK = s.Prefix.Scheme != "gs"
	if cmd == "wal-fetch" && walname.Classify(p.Pos[0]) == walname.KindOther {
		// A name that is not a WAL file's is a usage error the full
		// program words itself.
		return 0, false, false
	}
	if s.SocketPath == "" {
		return 0, false, walOK
	}
	fastpath.UseExecutable(core)
	prog, _ := cli.Prog(argv[0])
	// Never stopped: the process exits right after, and signal.Stop
	// would first wait for the runtime's signal loop to go idle.
	ctx, _ := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	req := &fastpath.Request{Command: cmd, Positionals: p.Pos, Options: p.Vals, Flags: p.Flags,
		Prog: prog, GlobalArgs: g.Args, Terse: flags.Terse}
	switch cmd {
	case "wal-push":
		ok, status, err = fastpath.HandOff(ctx, s, req, stdout, stderr)
	case "wal-fetch":
		ok, status, err = fastpath.HandOffFetch(ctx, s, req, p.Pos[1], stdout, stderr)
	default:
		return 0, false, false
	}
	switch {
	case !ok:
		return 0, false, walOK
	case err != nil:
		// Told to stop, and the agent did not report how its work ended
		// (its log lines, as the full program's own run would write
		// them, normally come back with its status): exit 1 as the full
		// program does, with a plain line, since the front has no logger.
		fmt.Fprintf(stderr, "%s: stopped before the agent reported the outcome: %v\n", prog, err)
		return 1, true, false
	}
	return status, true, false
}
