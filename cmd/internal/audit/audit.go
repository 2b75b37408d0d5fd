// Package audit writes the audit capture: the first packets of every p2p
// flow, in pcapng with a comment on each flow's first packet (flow id,
// label, probability, reasons, ban), so an operator can open in Wireshark
// why a host was blocked. The file rotates by size at flow boundaries
// (audit.pcapng, .1, ... .N).
package audit

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/swarmguard/swarmguard/cmd/internal/rotate"
)

// Frame is one packet to keep.
type Frame struct {
	Time  time.Time
	Len   int // on the wire
	Frame []byte
}

// Writer is the rotating audit capture. Its methods may be called from
// several goroutines.
type Writer struct {
	path      string
	maxSize   int64
	keep      int
	snap      int
	mu        sync.Mutex
	f         *os.File
	buf       *bufio.Writer
	ng        *pcapgo.NgWriter
	size      int64
	flows     uint64
	rotations uint64
}

// Open creates dir (0750) and starts dir/audit.pcapng (an existing one is
// rotated away first: a pcapng file cannot be appended to blindly).
func Open(dir string, maxSize int64, keep, snap int) (*Writer, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	w := &Writer{path: filepath.Join(dir, "audit.pcapng"), maxSize: maxSize, keep: keep, snap: snap}
	if _, err := os.Stat(w.path); err == nil {
		if err := rotate.Shift(w.path, w.keep); err != nil {
			return nil, err
		}
	}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

// Path is the current file.
func (w *Writer) Path() string { return w.path }

type counter struct {
	f *os.File
	n *int64
}

func (c counter) Write(p []byte) (int, error) {
	n, err := c.f.Write(p)
	*c.n += int64(n)
	return n, err
}

func (w *Writer) open() error {
	f, err := os.OpenFile(w.path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	w.f, w.size = f, 0
	w.buf = bufio.NewWriter(counter{f, &w.size})
	ng, err := pcapgo.NewNgWriterInterface(w.buf, pcapgo.NgInterface{Name: "swarmguard", LinkType: layers.LinkTypeEthernet, SnapLength: uint32(w.snap)},
		pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Application: "swarmguard", Comment: "first packets of p2p flows"}})
	if err != nil {
		f.Close()
		return fmt.Errorf("audit: %w", err)
	}
	w.ng = ng
	return nil
}

// Flow writes one flow's frames; comment goes on its first packet.
func (w *Writer) Flow(comment string, frames []Frame) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.maxSize > 0 && w.size > 0 && w.size+int64(w.buf.Buffered()) >= w.maxSize {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	for i, f := range frames {
		ci := gopacket.CaptureInfo{Timestamp: f.Time, CaptureLength: len(f.Frame), Length: f.Len}
		var opt pcapgo.NgPacketOptions
		if i == 0 {
			opt.Comments = []string{comment}
		}
		if err := w.ng.WritePacketWithOptions(ci, f.Frame, opt); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
	}
	w.flows++
	if err := w.ng.Flush(); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

func (w *Writer) rotate() error {
	if err := w.ng.Flush(); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if err := rotate.Shift(w.path, w.keep); err != nil {
		return err
	}
	w.rotations++
	return w.open()
}

// SetLimits changes the rotation size and the files kept (a reload).
func (w *Writer) SetLimits(maxSize int64, keep int) {
	w.mu.Lock()
	w.maxSize, w.keep = maxSize, keep
	w.mu.Unlock()
}

// Counts returns the flows written and the rotations so far.
func (w *Writer) Counts() (flows, rotations uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flows, w.rotations
}

// Close flushes and closes the file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.ng.Flush(); err != nil {
		w.f.Close()
		return fmt.Errorf("audit: %w", err)
	}
	return w.f.Close()
}
