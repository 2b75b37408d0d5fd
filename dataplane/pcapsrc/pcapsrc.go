// Package pcapsrc reads pcap and pcapng files as the offline packet source.
//
// It hands out frames without a per-packet allocation (the buffer is reused)
// and keeps the byte offset of the last complete record, so that a truncated
// or corrupt file can be reported as "file: offset N: cause" after the packets
// before it were classified.
package pcapsrc

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/swarmguard/swarmguard/shard/packet"
)

const bufSize = 1 << 20

// Reader yields the frames of one capture file in file order.
type Reader struct {
	name   string
	f      *os.File
	cnt    countingReader
	br     *bufio.Reader
	pcap   *classic
	mp     *mapped // an uncompressed classic pcap file, read from a mapping
	ng     *pcapgo.NgReader
	link   packet.LinkType
	offset int64 // end of the last record read in full
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Error is a read failure at a byte offset of a named file.
type Error struct {
	File   string
	Offset int64 // -1: not known (a fault on a mapped frame, Guard)
	Err    error
}

func (e *Error) Error() string {
	if e.Offset < 0 {
		return fmt.Sprintf("%s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("%s: offset %d: %v", e.File, e.Offset, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Open opens a pcap or pcapng file (told apart by its magic number).
func Open(name string) (*Reader, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("open capture: %w", err)
	}
	mp, err := mapClassic(f)
	if err != nil {
		f.Close()
		return nil, &Error{File: name, Offset: 0, Err: fmt.Errorf("pcap header: %w", err)}
	}
	if mp != nil {
		return &Reader{name: name, f: f, mp: mp, link: mp.link, offset: int64(mp.pos)}, nil
	}
	r, err := newReader(name, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.f = f
	return r, nil
}

// NewReader reads a capture from a stream (stdin); name labels its errors.
// Without a file to look back into, pcapng trailing non-packet blocks
// after a cut record read as a truncation.
func NewReader(name string, rd io.Reader) (*Reader, error) { return newReader(name, rd) }

func newReader(name string, rd io.Reader) (*Reader, error) {
	r := &Reader{name: name}
	r.cnt.r = rd
	// pcapgo wraps its input in bufio.NewReader, which returns a *bufio.Reader
	// of sufficient size unchanged: handing it ours lets us tell how many bytes
	// it consumed (counted - buffered).
	r.br = bufio.NewReaderSize(&r.cnt, bufSize)
	magic, err := r.br.Peek(4)
	if err != nil {
		return nil, &Error{File: name, Offset: 0, Err: fmt.Errorf("not a capture file: %w", noEOF(err))}
	}
	switch m := binary.LittleEndian.Uint32(magic); {
	case m == 0xa1b2c3d4, m == 0xd4c3b2a1, m == 0xa1b23c4d, m == 0x4d3cb2a1, m == 0xa1b2cd34, m == 0x34cdb2a1, m == 0x0a0d0d0a, m&0xffff == 0x8b1f:
	default:
		return nil, &Error{File: name, Offset: 0, Err: fmt.Errorf("not a pcap or pcapng file (starts %x)", magic)}
	}
	if binary.LittleEndian.Uint32(magic) == 0x0a0d0d0a {
		ng, err := pcapgo.NewNgReader(r.br, pcapgo.NgReaderOptions{WantMixedLinkType: true})
		if err != nil {
			return nil, &Error{File: name, Offset: 0, Err: fmt.Errorf("pcapng header: %w", noEOF(err))}
		}
		r.ng = ng
		r.link = packet.LinkType(ng.LinkType())
	} else {
		p, err := newClassic(r.br)
		if err != nil {
			return nil, &Error{File: name, Offset: 0, Err: fmt.Errorf("pcap header: %w", noEOF(err))}
		}
		r.pcap = p
		r.link = p.link
	}
	r.offset = r.consumed()
	return r, nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (r *Reader) consumed() int64 { return r.cnt.n - int64(r.br.Buffered()) }

// Name is the file name given to Open.
func (r *Reader) Name() string { return r.name }

// Offset is the byte offset just past the last record read in full.
func (r *Reader) Offset() int64 { return r.offset }

// Next returns the next frame, its link type and capture time. The frame is
// valid until the next call. At the clean end of the file it returns io.EOF;
// any other error is an *Error naming the offset of the damaged record.
func (r *Reader) Next() (frame []byte, link packet.LinkType, ts time.Time, err error) {
	var ci gopacket.CaptureInfo
	link = r.link
	if r.mp != nil {
		frame, ts, err = r.mp.next()
		switch {
		case err == nil:
			r.offset = int64(r.mp.pos)
			return frame, link, ts, nil
		case err == io.EOF:
			return nil, 0, time.Time{}, io.EOF
		case errors.Is(err, errTruncatedUnder):
			return nil, 0, time.Time{}, &Error{File: r.name, Offset: r.offset, Err: err}
		}
		return nil, 0, time.Time{}, &Error{File: r.name, Offset: r.offset, Err: describe(err)}
	}
	if r.pcap != nil {
		frame, ci.Timestamp, err = r.pcap.next()
	} else {
		frame, ci, err = r.ng.ZeroCopyReadPacketData()
		if len(ci.AncillaryData) > 0 {
			if lt, ok := ci.AncillaryData[0].(layers.LinkType); ok {
				link = packet.LinkType(lt)
			}
		}
	}
	if err != nil {
		if errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && r.cleanEnd() {
			return nil, 0, time.Time{}, io.EOF
		}
		return nil, 0, time.Time{}, &Error{File: r.name, Offset: r.offset, Err: describe(err)}
	}
	r.offset = r.consumed()
	return frame, link, ci.Timestamp, nil
}

// InPlace reports whether the frames can be read where they lie, in a
// mapping of the file (NextInPlace): an uncompressed classic pcap file.
func (r *Reader) InPlace() bool { return r.mp != nil }

// NextInPlace is Next without the frame's copy, for a reader that is
// InPlace: the frame is the file's bytes, valid until Close, read-only.
// It must be called, and its frames read, on any goroutine, only inside
// Guard: another process truncating the file makes the pages past its new
// end fault.
func (r *Reader) NextInPlace() (frame []byte, link packet.LinkType, ts time.Time, err error) {
	if r.mp == nil {
		return nil, 0, time.Time{}, &Error{File: r.name, Offset: r.offset, Err: errors.New("not read from a mapping")}
	}
	frame, ts, err = r.mp.nextInPlace()
	switch {
	case err == nil:
		r.offset = int64(r.mp.pos)
		return frame, r.link, ts, nil
	case err == io.EOF:
		return nil, 0, time.Time{}, io.EOF
	}
	return nil, 0, time.Time{}, &Error{File: r.name, Offset: r.offset, Err: describe(err)}
}

// Guard runs fn, which reads frames of NextInPlace, with the goroutine's
// panic-on-fault set: a fault on the mapping (the file truncated under
// the reader) stops fn and comes back as an *Error, "file truncated while
// being read", with no offset (any goroutine may call Guard, and the fault
// may be on any frame handed out). Any other panic goes on. For a reader
// that is not InPlace it only runs fn.
func (r *Reader) Guard(fn func()) error {
	if r.mp == nil {
		fn()
		return nil
	}
	if err := r.mp.guard(fn); err != nil {
		return &Error{File: r.name, Offset: -1, Err: err}
	}
	return nil
}

// cleanEnd tells a clean end of file from a record cut short. In pcap,
// nothing may follow the last record. In pcapng, non-packet blocks
// (statistics, name resolution) may, and they must be whole blocks.
func (r *Reader) cleanEnd() bool {
	if r.consumed() == r.offset {
		return true
	}
	if r.ng == nil || r.f == nil {
		return false
	}
	return wholeBlocks(r.f, r.offset, r.consumed())
}

// wholeBlocks checks that [from, to) of f is a run of complete pcapng blocks.
func wholeBlocks(f io.ReaderAt, from, to int64) bool {
	var hdr [8]byte
	for from < to {
		if _, err := f.ReadAt(hdr[:], from); err != nil {
			return false
		}
		n := int64(binary.LittleEndian.Uint32(hdr[4:8]))
		if n < 12 || n%4 != 0 || from+n > to {
			n = int64(binary.BigEndian.Uint32(hdr[4:8]))
			if n < 12 || n%4 != 0 || from+n > to {
				return false
			}
		}
		from += n
	}
	return true
}

func describe(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("truncated record")
	}
	return fmt.Errorf("corrupt record: %w", err)
}

// Close closes the file opened by Open.
func (r *Reader) Close() error {
	var err error
	if r.mp != nil {
		err = r.mp.unmap()
	}
	if r.f != nil {
		err = errors.Join(err, r.f.Close())
	}
	return err
}
