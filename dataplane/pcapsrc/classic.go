package pcapsrc

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/swarmguard/swarmguard/shard/packet"
)

// classic reads the classic pcap format itself: both byte orders,
// microsecond and nanosecond timestamps, any minor version (2.0-2.2 files
// have the captured and original lengths the other way round, as libpcap
// knows), the 24-byte records of Kuznetzov's patched libpcap, and gzip.
// pcapgo refuses minor versions other than 4, which real test suites have.
type classic struct {
	r       io.Reader
	order   binary.ByteOrder
	nano    bool
	swapped bool // version < 2.3: orig_len before incl_len
	extra   int  // bytes after the 16-byte record header (Kuznetzov: 8)
	link    packet.LinkType
	hdr     [24]byte
	buf     []byte
}

// Magic numbers as read little-endian.
const (
	magicMicro     = 0xa1b2c3d4
	magicNano      = 0xa1b23c4d
	magicKuznetzov = 0xa1b2cd34
	maxRecord      = 1 << 18 // libpcap's largest snaplen
)

func newClassic(br *bufio.Reader) (*classic, error) {
	c := &classic{r: br}
	if m, _ := br.Peek(2); len(m) == 2 && m[0] == 0x1f && m[1] == 0x8b {
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, err
		}
		c.r = bufio.NewReaderSize(z, bufSize)
	}
	h := c.hdr[:24]
	if _, err := io.ReadFull(c.r, h); err != nil {
		return nil, err
	}
	if err := c.header(h); err != nil {
		return nil, err
	}
	return c, nil
}

// header reads the 24-byte file header h.
func (c *classic) header(h []byte) error {
	switch m := binary.LittleEndian.Uint32(h); {
	case m == magicMicro || m == magicNano || m == magicKuznetzov:
		c.order = binary.LittleEndian
	case binary.BigEndian.Uint32(h) == magicMicro || binary.BigEndian.Uint32(h) == magicNano || binary.BigEndian.Uint32(h) == magicKuznetzov:
		c.order = binary.BigEndian
	default:
		return fmt.Errorf("unknown magic %x", h[:4])
	}
	m := c.order.Uint32(h)
	c.nano = m == magicNano
	if m == magicKuznetzov {
		c.extra = 8
	}
	major, minor := c.order.Uint16(h[4:6]), c.order.Uint16(h[6:8])
	if major != 2 {
		return fmt.Errorf("unknown version %d.%d", major, minor)
	}
	c.swapped = minor < 3
	// The link type's upper bits carry the FCS length (LINKTYPE_ with
	// LT_FCS_LENGTH_PRESENT); the type itself is the low 16.
	c.link = packet.LinkType(c.order.Uint32(h[20:24]) & 0xffff)
	return nil
}

// next reads one record; the frame is valid until the next call.
func (c *classic) next() ([]byte, time.Time, error) {
	h := c.hdr[:16+c.extra]
	if _, err := io.ReadFull(c.r, h); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, time.Time{}, err
		}
		return nil, time.Time{}, io.EOF
	}
	incl, ts, err := c.record(h)
	if err != nil {
		return nil, time.Time{}, err
	}
	data := c.frameBuf(incl)
	if _, err := io.ReadFull(c.r, data); err != nil {
		return nil, time.Time{}, io.ErrUnexpectedEOF
	}
	return data, ts, nil
}

// record reads a record header: the captured length and the time.
func (c *classic) record(h []byte) (int, time.Time, error) {
	sec, frac := c.order.Uint32(h[0:4]), c.order.Uint32(h[4:8])
	incl, orig := c.order.Uint32(h[8:12]), c.order.Uint32(h[12:16])
	if c.swapped {
		incl, orig = orig, incl
	}
	if incl > maxRecord {
		return 0, time.Time{}, fmt.Errorf("record of %d bytes (captured length larger than any snaplen)", incl)
	}
	_ = orig
	ns := int64(frac) * 1000
	if c.nano {
		ns = int64(frac)
	}
	return int(incl), time.Unix(int64(sec), ns).UTC(), nil
}

// frameBuf is the reused buffer for a frame of n bytes.
func (c *classic) frameBuf(n int) []byte {
	if cap(c.buf) < n {
		c.buf = make([]byte, max(n, 2048))
	}
	return c.buf[:n]
}
