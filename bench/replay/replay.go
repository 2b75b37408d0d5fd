// Package replay sends the Ethernet frames of captures out of an interface
// (AF_PACKET), paced, bounded in packets and time: the demo's and the
// harness's way to put bundled traffic through a bridge.
package replay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"golang.org/x/sys/unix"

	"github.com/swarmguard/swarmguard/dataplane/pcapsrc"
	"github.com/swarmguard/swarmguard/shard/packet"
)

// Options bound a replay.
type Options struct {
	Interface string
	Rate      int     // packets per second (default 20000), when Speed is 0
	Speed     float64 // if > 0: keep the captures' own timing, this many times faster
	// Pad restores frames a capture's snaplen cut to their length on the
	// wire (the IP header's), zero-filled: the live path takes only whole
	// frames, and the recognizers read the first bytes, which are kept.
	Pad     bool
	Max     int           // packets at most (default 1e6)
	Timeout time.Duration // at most this long (default 60 s)
}

// Result counts what a replay did.
type Result struct {
	Sent, Skipped int // skipped: not Ethernet, or longer than the MTU allows
}

// Files replays files in order.
func Files(o Options, files ...string) (Result, error) {
	var res Result
	if o.Rate <= 0 {
		o.Rate = 20000
	}
	if o.Max <= 0 {
		o.Max = 1_000_000
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Minute
	}
	ifi, err := net.InterfaceByName(o.Interface)
	if err != nil {
		return res, fmt.Errorf("replay: %s: %w", o.Interface, err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
	if err != nil {
		return res, fmt.Errorf("replay: packet socket (root?): %w", err)
	}
	defer unix.Close(fd)
	to := &unix.SockaddrLinklayer{Ifindex: ifi.Index}
	start, deadline := time.Now(), time.Now().Add(o.Timeout)
	gap := time.Second / time.Duration(o.Rate)
	var first time.Time // the first frame's capture time, with Speed
	buf := make([]byte, 0, 1<<16)
	for _, name := range files {
		r, err := pcapsrc.Open(name)
		if err != nil {
			return res, err
		}
		for res.Sent < o.Max && time.Now().Before(deadline) {
			frame, link, ts, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				r.Close()
				return res, err
			}
			if o.Pad {
				frame = padToWire(frame, buf[:0])
			}
			if link != packet.LinkEthernet || len(frame) > ifi.MTU+14 || len(frame) < 14 {
				res.Skipped++
				continue
			}
			if o.Speed > 0 {
				if first.IsZero() {
					first = ts
				}
				if next := start.Add(time.Duration(float64(ts.Sub(first)) / o.Speed)); time.Until(next) > 0 {
					time.Sleep(time.Until(next))
				}
			}
			if err := unix.Sendto(fd, frame, 0, to); err != nil && !errors.Is(err, unix.ENOBUFS) {
				r.Close()
				return res, fmt.Errorf("replay: send on %s: %w", o.Interface, err)
			}
			res.Sent++
			if next := start.Add(time.Duration(res.Sent) * gap); o.Speed <= 0 && time.Until(next) > 0 {
				time.Sleep(time.Until(next))
			}
		}
		r.Close()
	}
	return res, nil
}

// padToWire returns frame, or a copy in buf zero-filled to the length its
// untagged IPv4 or IPv6 header gives, when the capture cut it shorter.
func padToWire(frame, buf []byte) []byte {
	if len(frame) < 14+40 {
		return frame
	}
	wire := 0
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case 0x0800:
		wire = 14 + int(binary.BigEndian.Uint16(frame[16:18]))
	case 0x86dd:
		wire = 14 + 40 + int(binary.BigEndian.Uint16(frame[18:20]))
	}
	if wire <= len(frame) || wire > cap(buf) {
		return frame
	}
	buf = append(buf, frame...)
	return append(buf, make([]byte, wire-len(frame))...)
}
