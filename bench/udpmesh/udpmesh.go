// Package udpmesh makes the UDP traffic of busy normal hosts that behave like
// peers without being BitTorrent: a voice or video mesh where every member
// talks to every other on high ports (SRTP-like: a plaintext RTP header over
// random payload), encrypted game or interactive traffic (random payload,
// small and frequent), and servers that answer each datagram. The capture
// harness records it as normal traffic that a P2P detector must leave alone.
package udpmesh

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"
)

// Options shape one member's traffic.
type Options struct {
	Listen   string        // local ip:port
	To       []string      // members to send to (ip:port); none: only answer
	Interval time.Duration // between datagrams to each member (default 20 ms)
	MinSize  int           // payload bytes, uniformly in [MinSize, MaxSize]
	MaxSize  int
	RTP      bool          // a 12-byte RTP header (version 2, seq, timestamp, SSRC) before the random payload
	Reply    bool          // answer every datagram received (a game server's state update)
	Duration time.Duration // how long to run (default 30 s)
}

// Run sends and answers until o.Duration passes.
func Run(o Options) error {
	if o.Interval <= 0 {
		o.Interval = 20 * time.Millisecond
	}
	if o.Duration <= 0 {
		o.Duration = 30 * time.Second
	}
	if o.MinSize <= 0 || o.MaxSize < o.MinSize || o.MaxSize > 1400 {
		return fmt.Errorf("udpmesh: sizes %d-%d: want 1 <= min <= max <= 1400", o.MinSize, o.MaxSize)
	}
	c, err := net.ListenPacket("udp", o.Listen)
	if err != nil {
		return fmt.Errorf("udpmesh: %w", err)
	}
	defer c.Close()
	peers := make([]*net.UDPAddr, 0, len(o.To))
	for _, t := range o.To {
		a, err := net.ResolveUDPAddr("udp", t)
		if err != nil {
			return fmt.Errorf("udpmesh: --to %q: %w", t, err)
		}
		peers = append(peers, a)
	}
	end := time.Now().Add(o.Duration)
	c.SetDeadline(end)
	errc := make(chan error, 1)
	go func() { errc <- receive(c, o) }()
	var seq uint16
	var ts uint32
	ssrc := make([]byte, 4)
	rand.Read(ssrc)
	buf := make([]byte, 1500)
	tick := time.NewTicker(o.Interval)
	defer tick.Stop()
	for time.Now().Before(end) && len(peers) > 0 {
		<-tick.C
		seq++
		ts += 960
		for _, p := range peers {
			n := fill(buf, o, seq, ts, ssrc)
			if _, err := c.WriteTo(buf[:n], p); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				// A member not up yet answers with ICMP: keep going, as a call does.
				continue
			}
		}
	}
	return <-errc
}

// receive answers datagrams when o.Reply is set, until the deadline.
func receive(c net.PacketConn, o Options) error {
	buf := make([]byte, 2048)
	out := make([]byte, 1500)
	ssrc := make([]byte, 4)
	rand.Read(ssrc)
	var seq uint16
	var ts uint32
	for {
		_, from, err := c.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil
			}
			if errors.As(err, &ne) {
				continue // ICMP unreachable from a member not up yet
			}
			return fmt.Errorf("udpmesh: %w", err)
		}
		if o.Reply {
			seq++
			ts += 960
			n := fill(out, o, seq, ts, ssrc)
			c.WriteTo(out[:n], from)
		}
	}
}

// fill writes one datagram: random bytes of a random size in range, after
// an RTP header if asked.
func fill(b []byte, o Options, seq uint16, ts uint32, ssrc []byte) int {
	n := o.MinSize
	if o.MaxSize > o.MinSize {
		r, _ := rand.Int(rand.Reader, big.NewInt(int64(o.MaxSize-o.MinSize+1)))
		n += int(r.Int64())
	}
	rand.Read(b[:n])
	if o.RTP && n >= 12 {
		b[0], b[1] = 0x80, 111 // version 2, dynamic payload type (Opus)
		binary.BigEndian.PutUint16(b[2:], seq)
		binary.BigEndian.PutUint32(b[4:], ts)
		copy(b[8:12], ssrc)
	}
	return n
}
