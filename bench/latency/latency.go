// Package latency measures round trips through the bridge: a UDP echo on
// the sink side, a pinger on the generator side sending one probe at a time.
package latency

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"time"
)

// Echo answers every UDP datagram on addr with itself until d passes.
func Echo(addr string, d time.Duration) error {
	c, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("echo: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(d))
	buf := make([]byte, 2048)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil
			}
			return fmt.Errorf("echo: %w", err)
		}
		c.WriteTo(buf[:n], from)
	}
}

// Result are round-trip times.
type Result struct {
	Sent     int           `json:"sent"`
	Received int           `json:"received"`
	P50      time.Duration `json:"p50_ns"`
	P99      time.Duration `json:"p99_ns"`
}

// Ping sends n probes to addr, each after the previous one's answer (or a
// 100 ms timeout), interval apart, and returns the percentiles.
func Ping(addr string, n int, interval time.Duration) (Result, error) {
	var r Result
	c, err := net.Dial("udp", addr)
	if err != nil {
		return r, fmt.Errorf("ping: %w", err)
	}
	defer c.Close()
	rtts := make([]time.Duration, 0, n)
	out, in := make([]byte, 16), make([]byte, 64)
	for i := 0; i < n; i++ {
		binary.BigEndian.PutUint64(out, uint64(i))
		start := time.Now()
		if _, err := c.Write(out); err != nil {
			return r, fmt.Errorf("ping: %w", err)
		}
		r.Sent++
		c.SetReadDeadline(start.Add(100 * time.Millisecond))
		for {
			m, err := c.Read(in)
			if err != nil {
				break
			}
			if m >= 8 && binary.BigEndian.Uint64(in) == uint64(i) {
				rtts = append(rtts, time.Since(start))
				r.Received++
				break
			}
		}
		time.Sleep(interval)
	}
	if len(rtts) == 0 {
		return r, errors.New("ping: no answers")
	}
	slices.Sort(rtts)
	r.P50 = rtts[len(rtts)/2]
	r.P99 = rtts[min(len(rtts)-1, len(rtts)*99/100)]
	return r, nil
}
