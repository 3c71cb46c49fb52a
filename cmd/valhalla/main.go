// Command valhalla serves Valhalla's API: standardized errors, the system
// log audit trail, request correlation and health probes.
//
//	valhalla serve            serve the API (the default)
//	valhalla migrate up       apply pending migrations
//	valhalla migrate status   list migrations and whether they are applied
//	valhalla tokens ...       create, list and revoke bearer tokens
//	valhalla logs ...         write, get and list entries on a running server
//	valhalla sinks ...        manage the sinks the trail is pushed to
//	valhalla ledger key       print the ledger's verifier key
//	valhalla verify ...       verify a server's sealed trail against its signed checkpoints
//	valhalla version          print the build version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version and commit are set at build time with
// -ldflags "-X main.version=... -X main.commit=..."; without commit, the
// VCS revision the go command stamped, if any, is reported.
var (
	version = "dev"
	commit  = ""
)

// serveMemoryLimit is the Go runtime's soft memory limit for valhalla
// serve unless GOMEMLIMIT sets another: the garbage collector works harder
// as the heap nears it, so the memory that --body-budget and the page caps
// bound by design is returned before the heap doubles, also when the
// collector is short of CPU (docs/security.md). It is set in main, not in
// serve, so that tests running serve in their own process keep theirs.
const serveMemoryLimit = 160 << 20

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(serveMemoryLimit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "valhalla:", err)
		os.Exit(1)
	}
}

const usage = `usage: valhalla <command> [flags]

commands:
  serve            serve the API (flags: valhalla serve -h)
  migrate up       apply pending database migrations
  migrate status   list migrations and whether they are applied
  tokens create|list|revoke
                   manage bearer tokens (valhalla tokens -h)
  sinks create|list|pause|resume|delete|replay
                   manage the sinks the trail is pushed to (valhalla sinks -h)
  logs write|get|list|tail|export
                   talk to a running server (valhalla logs -h)
  ledger key       print the ledger's verifier key (valhalla ledger -h)
  verify           verify a server's sealed trail (valhalla verify -h)
  retention run    create partitions ahead and apply the retention (valhalla retention -h)
  holds create|list|release
                   manage legal holds (valhalla holds -h)
  version          print the build version
`

// run is the whole program: it parses args, reads the environment only
// through getenv, and writes only to stdout and stderr. It returns when the
// command is done or, for serve, when ctx is cancelled and shutdown is over.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		args = []string{"serve"}
	}
	err := dispatch(ctx, args, getenv, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) { // -h printed the help
		return nil
	}
	return err
}

// dispatch runs the command args name.
func dispatch(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], getenv, stdout, stderr)
	case "migrate":
		return migrate(ctx, args[1:], getenv, stdout, stderr)
	case "tokens":
		return tokensCommand(ctx, args[1:], getenv, stdout, stderr)
	case "sinks":
		return sinksCommand(ctx, args[1:], getenv, stdout, stderr)
	case "logs":
		return logsCommand(ctx, args[1:], getenv, stdout, stderr)
	case "ledger":
		return ledgerCommand(ctx, args[1:], getenv, stdout, stderr)
	case "verify":
		return verifyCommand(ctx, args[1:], getenv, stdout, stderr)
	case "retention":
		return retentionCommand(ctx, args[1:], getenv, stdout, stderr)
	case "holds":
		return holdsCommand(ctx, args[1:], getenv, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, version)
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}
