package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
)

// synopsis is each subcommand's positional arguments, for -h.
var synopsis = map[string]string{
	"classify":         "[flags] FILE... (- reads a capture from stdin)",
	"run":              "[--config FILE] [flags]",
	"bans":             "list | show IP | add IP | del IP | flush  [flags]",
	"config":           "check [FILE] | default [run flags] | reference | man",
	"status":           "[--json] [--socket PATH]",
	"reload":           "[--socket PATH]",
	"bench accuracy":   "[flags]",
	"bench banlatency": "[flags] RECORDS IP[,IP...]",
	"bench compare":    "[flags]",
	"bench echo":       "[flags]",
	"bench gen":        "[flags]",
	"bench labels":     "[flags] PCAP...",
	"bench memory":     "[flags]",
	"bench ping":       "[flags]",
	"bench replay":     "--iface IF [flags] FILE...",
	"bench sink":       "[flags]",
	"bench tracker":    "[flags]",
	"bench train":      "[flags]",
	"bench udpmesh":    "[flags]",
	"bench veth":       "[flags]",
	"bench wrap":       "--encap KIND [flags] IN OUT",
	"bench stress":     "[--full] [--append FILE] SCENARIO|all",
	"bench capacity":   "[--gbps 10,40] [--driver-ns N] [--socket-ns N]",
}

var badValue = regexp.MustCompile(`^invalid (?:boolean )?value "(.*)" for (?:flag )?-(\S+): (.*)$`)

// newFlagSet makes a subcommand's flags. Parse errors come back as one line
// (parseFlags); -h prints the synopsis and the flags to stderr.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {} // the flag package calls it on every parse error
	return fs
}

// parseFlags parses args with flags anywhere on the line: before, between
// or after the positional arguments, which fs.Args() then returns in order.
// "--" ends the flags; "-" is a positional argument (stdin).
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	var pos, tail []string
	for i, a := range args {
		if a == "--" {
			args, tail = args[:i], args[i+1:]
			break
		}
	}
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(stderr, "usage: swarmguard %s %s\n\nflags:\n", fs.Name(), synopsis[fs.Name()])
				fs.SetOutput(stderr)
				fs.PrintDefaults()
				fs.SetOutput(io.Discard)
				return &exitError{code: 0, err: err}
			}
			// The flag package says `invalid value "-1h" for flag -ban-for: ...`;
			// operators write --ban-for.
			if m := badValue.FindStringSubmatch(err.Error()); m != nil {
				return usageErr("%s: --%s: %s", fs.Name(), m[2], m[3])
			}
			return usageErr("%s: %v (see -h)", fs.Name(), err)
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		pos, rest = append(pos, rest[0]), rest[1:]
	}
	// Leave the positionals in fs.Args().
	return fs.Parse(append([]string{"--"}, append(pos, tail...)...))
}
