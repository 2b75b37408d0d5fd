// Package compare times whole processes on the same merged capture and the
// same CPU core: swarmguard classify against ndpiReader (Debian's
// libndpi-bin). Figures are CPU seconds of the child process (user + sys),
// so a loaded machine stretches both alike; the ratio is what to read.
package compare

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/swarmguard/swarmguard/dataplane/pcapsrc"
	"github.com/swarmguard/swarmguard/shard/packet"
)

// Merge writes the Ethernet frames of every capture in files, repeated
// repeat times, into one pcap at out, with a monotonic clock (each copy an
// hour after the previous, so flows do not merge across copies). It returns
// the number of packets written.
func Merge(files []string, repeat int, out string) (int, error) {
	sort.Strings(files)
	var all []string
	for range repeat {
		all = append(all, files...)
	}
	return write(all, out, func(w *pcapgo.Writer, frame []byte, at time.Time) (int, error) {
		return 1, w.WritePacket(gopacket.CaptureInfo{Timestamp: at, CaptureLength: len(frame), Length: len(frame)}, frame)
	})
}

// write writes a pcap at out from the Ethernet frames of files, each file
// an hour after the previous one, through emit (which returns the frames
// it wrote). It returns the number of frames written.
func write(files []string, out string, emit func(w *pcapgo.Writer, frame []byte, at time.Time) (int, error)) (int, error) {
	f, err := os.Create(out)
	if err != nil {
		return 0, fmt.Errorf("merge: %w", err)
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	w := pcapgo.NewWriter(bw)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		return 0, fmt.Errorf("merge: %w", err)
	}
	n := 0
	base := time.Unix(1_600_000_000, 0)
	for _, name := range files {
		r, err := pcapsrc.Open(name)
		if err != nil {
			return n, err
		}
		var first time.Time
		for {
			data, link, ts, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				r.Close()
				return n, err
			}
			if link != packet.LinkEthernet {
				break
			}
			if first.IsZero() {
				first = ts
			}
			k, err := emit(w, data, base.Add(max(0, ts.Sub(first))))
			n += k
			if err != nil {
				r.Close()
				return n, fmt.Errorf("merge: %w", err)
			}
		}
		r.Close()
		base = base.Add(time.Hour)
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("merge: %w", err)
	}
	return n, f.Close()
}

// Run is one timed process.
type Run struct {
	Name    string
	Command []string
	CPU     time.Duration // user + sys of the child
	Wall    time.Duration
}

// PPS is packets per CPU second.
func (r Run) PPS(packets int) float64 { return float64(packets) / r.CPU.Seconds() }

// Time runs argv pinned to core (taskset) and measures it; output is discarded.
func Time(name string, core int, argv ...string) (Run, error) {
	full := append([]string{"taskset", "-c", fmt.Sprint(core)}, argv...)
	cmd := exec.Command(full[0], full[1:]...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return Run{}, fmt.Errorf("%s: %w", filepath.Base(argv[0]), err)
	}
	st := cmd.ProcessState
	return Run{Name: name, Command: argv, CPU: st.UserTime() + st.SystemTime(), Wall: time.Since(start)}, nil
}

// Overlay writes the Ethernet frames of every capture in files into one
// pcap at out, each frame copies times at the same moment, copy c with
// the third byte of both IPv4 addresses (the sixth of IPv6 ones) xored
// with c: copies concurrent, flows distinct, each flow's two directions
// still one flow, private ranges still private. Captures follow each other
// an hour apart, as in Merge. It is the dense many-flow traffic a busy
// link carries, from real flows: ticks of packet time full of packets.
func Overlay(files []string, copies int, out string) (int, error) {
	sort.Strings(files)
	buf := make([]byte, 0, 1<<16)
	return write(files, out, func(w *pcapgo.Writer, frame []byte, at time.Time) (int, error) {
		for c := range copies {
			buf = append(buf[:0], frame...)
			shiftAddrs(buf, byte(c))
			if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: at, CaptureLength: len(buf), Length: len(buf)}, buf); err != nil {
				return c, err
			}
		}
		return copies, nil
	})
}

// shiftAddrs xors c into the outer IP addresses of an Ethernet frame (one
// VLAN tag skipped); other frames are left alone.
func shiftAddrs(b []byte, c byte) {
	off := 12
	if len(b) >= off+2 && b[off] == 0x81 && b[off+1] == 0x00 {
		off += 4
	}
	if len(b) < off+2 {
		return
	}
	ip := b[off+2:]
	switch {
	case b[off] == 0x08 && b[off+1] == 0x00 && len(ip) >= 20:
		ip[12+2] ^= c
		ip[16+2] ^= c
	case b[off] == 0x86 && b[off+1] == 0xdd && len(ip) >= 40:
		ip[8+5] ^= c
		ip[24+5] ^= c
	}
}
