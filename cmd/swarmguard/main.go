// Command swarmguard recognizes BitTorrent and other P2P traffic from packet
// patterns. Subcommands: classify (offline pcaps), bench (training and
// benchmarks).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

const usage = `usage: swarmguard <command> [flags] [args]

commands:
  classify [--workers N] [--labels FILE[,FILE]] [--weights FILE] [--quiet] FILE...
                       classify pcap/pcapng files; JSON lines on stdout, summary on stderr
  run [--config FILE] --bridge IF_A,IF_B | --monitor IF [flags]
                       live AF_XDP dataplane: classify, drop, ban (root)
  bans list|show IP|add IP|del IP|flush [--pin DIR] [--for DURATION]
                       the bans: why each was set, until when; add and remove (root)
  status [--json]      the running dataplane: ports, rates, flows, bans, fail-open, last decisions (root)
  reload               re-read the configuration file and weights of the running dataplane (root)
  config check [FILE] | default | reference | man
                       validate a configuration; print the defaults, the key reference, the man page
  bench train [flags]  fit the model weights from labelled captures
  bench tracker [flags] HTTP(S) tracker used by the capture harness
  bench compare [flags] whole-process speed: swarmguard classify vs ndpiReader
  bench labels [flags]  ground-truth labels.jsonl for the capture harness's pcaps
  bench replay --iface IF [flags] FILE...
                       send captures' Ethernet frames out of an interface (root)
  bench veth [flags]   veth harness: baselines and swarmguard, Markdown table (--append BENCHMARKS.md) (root)
  bench memory --flows N  resident memory and bytes per flow with N flows
  bench gen | sink     the harness's generator and XDP sink (run inside its namespaces)
  bench banlatency RECORDS IP[,IP]
                       time from each IP's first p2p flow to its ban, from live records
  bench accuracy [flags]  ACCURACY.md: flows, hosts, bytes per capture and client
  bench wrap --encap KIND IN OUT
                       a capture's frames inside PPPoE, MPLS, GRE, GTP-U, VXLAN, ...
  bench udpmesh [flags] voice/video/game-like UDP for the capture harness
  bench stress [--full] [--append RELIABILITY.md] SCENARIO|all
                       reliability scenarios (flood, hosts, malformed, spoof, faults, soak) against the live bridge, with their promises (root)
  bench capacity [--gbps 10,40]
                       cores needed for line rates at 64 B and IMIX, from a fresh measurement (root)
  version              the build: module version and source revision
`

// exitError carries an exit status with its one-line message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func usageErr(format string, a ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, a...)}
}

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	if err == nil {
		return
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
		if code == 0 {
			return // -h
		}
	}
	fmt.Fprintf(os.Stderr, "swarmguard: %v\n", err)
	os.Exit(code)
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageErr("no command given")
	}
	switch args[0] {
	case "classify":
		return cmdClassify(args[1:], stdout, stderr)
	case "bench":
		return cmdBench(args[1:], stdout, stderr)
	case "run":
		return cmdRun(args[1:], stdout, stderr)
	case "bans":
		return cmdBans(args[1:], stdout, stderr)
	case "config":
		return cmdConfig(args[1:], stdout, stderr)
	case "status":
		return cmdStatus(args[1:], stdout, stderr)
	case "reload":
		return cmdReload(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	case "version", "--version":
		fmt.Fprintln(stdout, version())
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageErr("unknown command %q", args[0])
}

// describe is git describe at build time, set by make (-X main.describe).
var describe string

// version is the build as Go recorded it: the module version and, for a
// build from a git checkout, the revision, its time and whether the tree had
// changes.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "swarmguard (no build information)"
	}
	v := "swarmguard " + bi.Main.Version
	if describe != "" {
		v = "swarmguard " + describe
	}
	var rev, at, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+changes"
			}
		}
	}
	if rev != "" {
		v += fmt.Sprintf(" (%s%s %s)", rev[:min(12, len(rev))], dirty, at)
	}
	return v + " " + bi.GoVersion
}
