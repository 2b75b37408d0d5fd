package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/swarmguard/swarmguard/bench/stress"
)

// cmdStress runs reliability scenarios against the live bridge.
func cmdStress(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench stress")
	full := fs.Bool("full", false, "the full scenarios (make reliability) instead of the short ones (make test)")
	appendTo := fs.String("append", "", "append each table with the machine and command to this file (RELIABILITY.md)")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErr("bench stress: want one scenario: %s or all", strings.Join(stress.Scenarios, ", "))
	}
	names := []string{fs.Arg(0)}
	if names[0] == "all" {
		names = stress.Scenarios
	} else if !slices.Contains(stress.Scenarios, names[0]) {
		return usageErr("bench stress: unknown scenario %q (%s or all)", names[0], strings.Join(stress.Scenarios, ", "))
	}
	if miss, err := missingCaps(runCaps); err != nil || miss != "" {
		return &exitError{code: 2, err: fmt.Errorf("bench stress: needs root (namespaces, XDP, AF_XDP)")}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	if _, err := os.Stat("testdata/captures/encrypted.pcap"); err != nil {
		return usageErr("bench stress: run it from the repository (it replays testdata/captures)")
	}
	// Ctrl-C or SIGTERM: the scenario's commands are killed and it removes
	// its namespaces, links, programs and pins before the command returns.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	failed := 0
	for _, name := range names {
		r, err := stress.Run(name, stress.Options{Self: self, Root: root, Full: *full, Log: stderr, Ctx: ctx})
		if err != nil {
			return &exitError{code: 1, err: fmt.Errorf("bench stress %s: %w", name, err)}
		}
		cmdline := "swarmguard bench stress " + name
		if *full {
			cmdline += " --full"
		}
		md := stress.Markdown(r, fmt.Sprintf("%s, %s", machine(), time.Now().UTC().Format("2006-01-02")), cmdline)
		fmt.Fprint(stdout, md)
		if *appendTo != "" {
			f, err := os.OpenFile(*appendTo, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
			if err != nil {
				return fmt.Errorf("bench stress: %w", err)
			}
			_, werr := io.WriteString(f, md)
			if cerr := f.Close(); werr == nil {
				werr = cerr
			}
			if werr != nil {
				return fmt.Errorf("bench stress: %w", werr)
			}
		}
		if !r.Held() {
			failed++
		}
	}
	if failed > 0 {
		return &exitError{code: 1, err: fmt.Errorf("bench stress: %d of %d scenarios broke a promise", failed, len(names))}
	}
	return nil
}
