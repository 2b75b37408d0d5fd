package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/swarmguard/swarmguard/bench/tracker"
)

func cmdBench(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageErr("bench: want a subcommand: train, compare, labels, tracker")
	}
	switch args[0] {
	case "tracker":
		return cmdTracker(args[1:], stderr)
	case "train":
		return cmdTrain(args[1:], stdout, stderr)
	case "compare":
		return cmdCompare(args[1:], stdout, stderr)
	case "labels":
		return cmdLabels(args[1:], stdout, stderr)
	case "banlatency":
		return cmdBanLatency(args[1:], stdout, stderr)
	case "replay":
		return cmdReplay(args[1:], stdout, stderr)
	case "gen":
		return cmdGen(args[1:], stdout, stderr)
	case "sink":
		return cmdSink(args[1:], stdout, stderr)
	case "veth":
		return cmdVeth(args[1:], stdout, stderr)
	case "memory":
		return cmdMemory(args[1:], stdout, stderr)
	case "echo":
		return cmdEcho(args[1:], stdout, stderr)
	case "ping":
		return cmdPing(args[1:], stdout, stderr)
	}
	return usageErr("bench: unknown subcommand %q", args[0])
}

// cmdTracker runs the harness's HTTP(S) tracker until SIGINT/SIGTERM.
func cmdTracker(args []string, stderr io.Writer) error {
	fs := newFlagSet("bench tracker")
	listen := fs.String("listen", "127.0.0.1:6969", "address to listen on")
	useTLS := fs.Bool("tls", false, "serve HTTPS with a throwaway self-signed certificate")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return usageErr("bench tracker: --listen %q: %v", *listen, err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("bench tracker: %w", err)
	}
	srv := &http.Server{Handler: tracker.New(), ReadHeaderTimeout: 5 * time.Second}
	if *useTLS {
		cert, err := tracker.SelfSigned(net.ParseIP(host))
		if err != nil {
			return err
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}})
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("bench tracker: %w", err)
	}
	return nil
}
