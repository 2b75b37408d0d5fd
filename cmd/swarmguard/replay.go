package main

import (
	"fmt"
	"io"
	"time"

	"github.com/swarmguard/swarmguard/bench/replay"
)

// cmdReplay sends captures' Ethernet frames out of an interface.
func cmdReplay(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench replay")
	iface := fs.String("iface", "", "interface to send on")
	rate := fs.Int("rate", 20000, "packets per second")
	speed := fs.Float64("speed", 0, "if > 0: keep the captures' timing, this many times faster (instead of --rate)")
	pad := fs.Bool("pad", false, "restore frames the capture's snaplen cut to their wire length, zero-filled")
	maxN := fs.Int("max", 1_000_000, "packets at most")
	timeout := fs.Duration("timeout", time.Minute, "time at most")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if *iface == "" || fs.NArg() == 0 {
		return usageErr("bench replay: want --iface IF and capture files")
	}
	res, err := replay.Files(replay.Options{Interface: *iface, Rate: *rate, Speed: *speed, Pad: *pad, Max: *maxN, Timeout: *timeout}, fs.Args()...)
	fmt.Fprintf(stdout, "replayed %d frames (%d skipped)\n", res.Sent, res.Skipped)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	return nil
}
