// Package replay sends the Ethernet frames of captures out of an interface
// (AF_PACKET), paced, bounded in packets and time: the demo's and the
// harness's way to put bundled traffic through a bridge.
package replay

import (
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
	Rate      int           // packets per second (default 20000)
	Max       int           // packets at most (default 1e6)
	Timeout   time.Duration // at most this long (default 60 s)
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
	for _, name := range files {
		r, err := pcapsrc.Open(name)
		if err != nil {
			return res, err
		}
		for res.Sent < o.Max && time.Now().Before(deadline) {
			frame, link, _, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				r.Close()
				return res, err
			}
			if link != packet.LinkEthernet || len(frame) > ifi.MTU+14 || len(frame) < 14 {
				res.Skipped++
				continue
			}
			if err := unix.Sendto(fd, frame, 0, to); err != nil && !errors.Is(err, unix.ENOBUFS) {
				r.Close()
				return res, fmt.Errorf("replay: send on %s: %w", o.Interface, err)
			}
			res.Sent++
			if next := start.Add(time.Duration(res.Sent) * gap); time.Until(next) > 0 {
				time.Sleep(time.Until(next))
			}
		}
		r.Close()
	}
	return res, nil
}
