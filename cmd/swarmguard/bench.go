package main

import (
	"fmt"
	"io"
)

func cmdBench(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageErr("bench: want a subcommand: train, capture, compare")
	}
	switch args[0] {
	}
	return usageErr("bench: unknown subcommand %q", args[0])
}

var _ = fmt.Sprint
