package main

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/swarmguard/swarmguard/bench/tracker"
	"github.com/swarmguard/swarmguard/bench/udpmesh"
	"github.com/swarmguard/swarmguard/bench/wrap"
)

func cmdBench(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageErr("bench: want a subcommand: train, compare, labels, accuracy, tracker, replay, gen, sink, veth, memory, echo, ping, banlatency, wrap, udpmesh, stress, capacity")
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	case "tracker":
		return cmdTracker(args[1:], stderr)
	case "train":
		return cmdTrain(args[1:], stdout, stderr)
	case "compare":
		return cmdCompare(args[1:], stdout, stderr)
	case "capacity":
		return cmdCapacity(args[1:], stdout, stderr)
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
	case "accuracy":
		return cmdAccuracy(args[1:], stdout, stderr)
	case "wrap":
		return cmdWrap(args[1:], stdout, stderr)
	case "udpmesh":
		return cmdUDPMesh(args[1:], stderr)
	case "stress":
		return cmdStress(args[1:], stdout, stderr)
	}
	return usageErr("bench: unknown subcommand %q", args[0])
}

// cmdTracker runs the harness's HTTP(S) tracker until SIGINT/SIGTERM.
func cmdTracker(args []string, stderr io.Writer) error {
	fs := newFlagSet("bench tracker")
	listen := fs.String("listen", "127.0.0.1:6969", "address to listen on")
	useTLS := fs.Bool("tls", false, "serve HTTPS with a throwaway self-signed certificate")
	certOut := fs.String("cert-out", "", "with --tls, write the certificate (PEM) here, for clients that verify it")
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
		if *certOut != "" {
			pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
			if err := os.WriteFile(*certOut, pemCert, 0o644); err != nil {
				return fmt.Errorf("bench tracker: --cert-out: %w", err)
			}
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

// cmdUDPMesh runs one member of the capture harness's normal UDP traffic
// (voice/video mesh, game or interactive UDP) for a bounded time.
func cmdUDPMesh(args []string, stderr io.Writer) error {
	fs := newFlagSet("bench udpmesh")
	var o udpmesh.Options
	fs.StringVar(&o.Listen, "listen", "", "local ip:port")
	to := fs.String("to", "", "comma-separated ip:port of the members to send to (none: only answer)")
	fs.DurationVar(&o.Interval, "interval", 20*time.Millisecond, "pause between datagrams to each member")
	fs.IntVar(&o.MinSize, "min", 60, "smallest payload")
	fs.IntVar(&o.MaxSize, "max", 180, "largest payload")
	fs.BoolVar(&o.RTP, "rtp", false, "RTP header before the random payload (SRTP-like media)")
	fs.BoolVar(&o.Reply, "reply", false, "answer every datagram")
	fs.DurationVar(&o.Duration, "duration", 30*time.Second, "how long to run")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if o.Listen == "" {
		return usageErr("bench udpmesh: --listen is required")
	}
	if *to != "" {
		o.To = strings.Split(*to, ",")
	}
	return udpmesh.Run(o)
}

// cmdWrap wraps a capture's frames in an encapsulation (bench/wrap).
func cmdWrap(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench wrap")
	kind := fs.String("encap", "", "one of "+strings.Join(wrap.Kinds(), ", "))
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() != 2 || !slices.Contains(wrap.Kinds(), *kind) {
		return usageErr("bench wrap: want --encap KIND IN.pcap OUT.pcap, KIND one of %s", strings.Join(wrap.Kinds(), ", "))
	}
	st, err := wrap.File(*kind, fs.Arg(0), fs.Arg(1))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrapped %d frames in %s (%d skipped: not Ethernet/IP, or tagged already)\n", st.Wrapped, *kind, st.Skipped)
	return nil
}
