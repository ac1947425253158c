// Command mitoken gets Azure managed-identity access tokens from the command
// line, and runs a local emulator of the managed-identity endpoints.
//
// Usage:
//
//	mitoken demo       the library at work against an in-process emulator (no Azure needed)
//	mitoken emulate    serve the emulator and print the environment a program needs
//	mitoken token      get a real token where a managed identity is available
//	mitoken help [command]
//
// "mitoken <command> --help" describes each command's flags. Results go to
// standard output; progress and errors go to standard error. An access token
// is only ever written to standard output, by token, on success.
//
// Exit codes:
//
//	0  success
//	1  the endpoint answered with an error, or another failure
//	2  usage error: an unknown command, a bad flag or argument, or a bad
//	   value in the environment
//	3  no managed identity is available here (nothing answers, or the
//	   environment names no endpoint)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Exit codes; see the package documentation.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitUnavailable = 3
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command is one subcommand: its name, a one-line summary, and what it does.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"demo", "show the library working against an in-process emulator (no Azure needed)", runDemo},
		{"emulate", "serve the managed-identity emulator and print the environment to export", runEmulate},
		{"token", "get an access token from this host's managed identity", runToken},
	}
}

const exitCodesHelp = `Exit codes:
  0  success
  1  the endpoint answered with an error, or another failure
  2  usage error: an unknown command, a bad flag or argument, or a bad value in the environment
  3  no managed identity is available here
`

// run is the whole command, minus the process: it parses args, runs the
// subcommand until it ends or ctx is cancelled, and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && name == "help" {
			// "mitoken help token" is "mitoken token --help".
			return run(ctx, []string{args[1], "--help"}, stdout, stderr)
		}
		usage(stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "mitoken: unknown command %q\n\n", name)
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "mitoken gets Azure managed-identity access tokens and emulates their endpoints.\n\nUsage:\n  mitoken <command> [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "  %-8s %s\n\n", "help", "show this help, or a command's: mitoken help <command>")
	fmt.Fprintf(w, "Start with: go run ./cmd/mitoken demo\n\n%s", exitCodesHelp)
}

// newFlagSet returns a FlagSet for a subcommand whose help text is the
// usage line, the description and the flags.
func newFlagSet(name, usageLine, description string) *flag.FlagSet {
	fs := flag.NewFlagSet("mitoken "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse reports errors itself
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: mitoken %s %s\n\n%s\n", name, usageLine, strings.TrimSpace(description))
		printFlags(w, fs)
		fmt.Fprintf(w, "\n%s", exitCodesHelp)
	}
	return fs
}

// printFlags lists the flags of fs in the --name form that the help text uses.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	first := true
	fs.VisitAll(func(f *flag.Flag) {
		if first {
			fmt.Fprintf(w, "\nFlags:\n")
			first = false
		}
		kind, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s %s\n      %s", f.Name, kind, usage)
		if f.DefValue != "" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// parse parses args into fs. It returns -1 when the command should go on,
// else the exit code: 0 after --help (printed on stdout), 2 after a bad
// flag or a stray argument (reported on stderr with the usage).
func parse(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) int {
	err := fs.Parse(args)
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q (flags take the form --name value)", fs.Arg(0))
	}
	switch {
	case err == nil:
		return -1
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		fs.Usage()
		return exitOK
	}
	return usageError(fs, stderr, err.Error())
}

// usageError reports a usage problem with the command's usage, and returns 2.
func usageError(fs *flag.FlagSet, stderr io.Writer, msg string) int {
	fmt.Fprintf(stderr, "%s: %s\n\n", fs.Name(), msg)
	fs.SetOutput(stderr)
	fs.Usage()
	return exitUsage
}
