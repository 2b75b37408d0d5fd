package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/swarmguard/swarmguard/bench/accuracy"
	"github.com/swarmguard/swarmguard/bench/train"
	"github.com/swarmguard/swarmguard/classifier"
)

// cmdTrain fits the weights and writes the weights file the classifier embeds.
func cmdTrain(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench train")
	corpus := fs.String("corpus", "testdata/ndpi", "labelled corpus: DIR/pcap/* and DIR/labels.jsonl")
	captures := fs.String("captures", "testdata/captures", "real-client captures of bench/capture/capture.sh (labelled by its address plan)")
	out := fs.String("out", "classifier/weights.json", "weights file to write (- for stdout)")
	p := train.DefaultParams
	fs.Float64Var(&p.Alpha, "alpha", p.Alpha, "flow/host blend")
	fs.Float64Var(&p.PosWeight, "pos-weight", p.PosWeight, "BitTorrent flows' total weight relative to the others' (< 1: false positives cost more)")
	fs.Float64Var(&p.L2, "l2", p.L2, "L2 penalty")
	fs.IntVar(&p.Iterations, "iterations", p.Iterations, "optimiser steps")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	labels, err := accuracy.LoadLabels(filepath.Join(*corpus, "labels.jsonl"))
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	cfiles, _ := filepath.Glob(filepath.Join(*corpus, "pcap", "*"))
	kfiles, _ := filepath.Glob(filepath.Join(*captures, "*.pcap"))
	if len(cfiles) == 0 || len(kfiles) == 0 {
		return &exitError{code: 2, err: fmt.Errorf("bench train: need corpus pcaps in %s/pcap and captures in %s", *corpus, *captures)}
	}
	sort.Strings(cfiles)
	sort.Strings(kfiles)
	sources := []train.Source{
		{Name: "corpus", Files: cfiles, Truth: train.CorpusTruth(labels), PayloadOnly: true},
		{Name: "captures", Files: kfiles, Truth: train.CaptureTruth},
	}
	base := classifier.DefaultModel()
	data, err := train.Collect(sources, base, p.PosWeight)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "collected %d rows from %d flows (%d BitTorrent) in %d files\n", len(data.Rows), data.Flows, data.Positive, len(cfiles)+len(kfiles))
	m := *base
	m.Alpha = p.Alpha
	var loss float64
	m.Bias, m.Weights, loss = train.Fit(data.Rows, p)
	hostRows, err := train.CollectHosts(sources, &m, data)
	if err != nil {
		return err
	}
	m.HostBias, m.HostWeights, m.HostP2PWeight = train.FitHosts(hostRows, p)
	fmt.Fprintf(stderr, "flow loss %.4f; %d host rows (%d BitTorrent)\n", loss, data.Hosts, data.HostPositive)
	meta := map[string]any{
		"command": "swarmguard bench train", "params": p,
		"corpus_files": len(cfiles), "capture_files": len(kfiles),
		"rows": len(data.Rows), "flows": data.Flows, "bittorrent_flows": data.Positive,
		"hosts": data.Hosts, "bittorrent_hosts": data.HostPositive, "flow_loss": loss,
	}
	b, err := m.Marshal("fitted by `swarmguard bench train` (make train); do not edit by hand", meta)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if *out == "-" {
		_, err = stdout.Write(b)
		return err
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		return fmt.Errorf("bench train: %w", err)
	}
	fmt.Fprintf(stderr, "wrote %s\n", *out)
	return nil
}
