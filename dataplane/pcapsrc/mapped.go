package pcapsrc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mapped reads an uncompressed classic pcap file from a read-only mapping
// of it: no read system call and no kernel copy per buffer, the frame is
// copied once, from the page cache into the reader's buffer. That was a
// quarter of classify's time on bulk captures.
//
// A file truncated by another process while it is mapped makes the pages
// past its new end fault (SIGBUS). Every access to the mapping happens in
// next, with the goroutine's panic-on-fault set, so such a fault is an
// error at the record it hit ("file truncated while being read"), not a
// crash; the frames before it were read whole. The frame handed out is
// the reader's own copy, so the caller never touches the mapping.
type mapped struct {
	classic
	data []byte // the mapping
	pos  int    // offset of the next record
}

// errTruncatedUnder is a fault on the mapping: the file shrank under us.
var errTruncatedUnder = errors.New("file truncated while being read")

// mapClassic maps f when it is a regular, uncompressed classic pcap of
// at least a header's size; nil (and no error) when it is not one, so the
// caller reads it as a stream.
func mapClassic(f *os.File) (*mapped, error) {
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() || st.Size() < 24 || int64(int(st.Size())) != st.Size() {
		return nil, nil
	}
	var magic [4]byte
	if _, err := f.ReadAt(magic[:], 0); err != nil {
		return nil, nil
	}
	switch m := binary.LittleEndian.Uint32(magic[:]); m {
	case magicMicro, magicNano, magicKuznetzov, swap32(magicMicro), swap32(magicNano), swap32(magicKuznetzov):
	default:
		return nil, nil // pcapng, gzip: read as a stream
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, nil // a file system that cannot map: read as a stream
	}
	// Read ahead and drop behind, as a sequential read would.
	_ = unix.Madvise(data, unix.MADV_SEQUENTIAL)
	m := &mapped{data: data, pos: 24}
	var hdr [24]byte
	if _, err := m.copyOut(hdr[:], 0); err != nil {
		m.unmap()
		return nil, err
	}
	if err := m.header(hdr[:]); err != nil {
		m.unmap()
		return nil, err
	}
	return m, nil
}

func swap32(x uint32) uint32 { return x>>24 | x>>8&0xff00 | x<<8&0xff0000 | x<<24 }

// copyOut copies len(dst) bytes at off of the mapping into dst, turning a
// fault on the mapping into errTruncatedUnder.
func (m *mapped) copyOut(dst []byte, off int) (n int, err error) {
	defer m.fault(&err)
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	return copy(dst, m.data[off:off+len(dst)]), nil
}

// fault, deferred around an access to the mapping with panic-on-fault
// set, turns a fault inside the mapping into errTruncatedUnder in *err;
// any other panic goes on.
func (m *mapped) fault(err *error) {
	if p := recover(); p != nil {
		if f, ok := p.(interface{ Addr() uintptr }); ok && m.inside(f.Addr()) {
			*err = errTruncatedUnder
			return
		}
		panic(p)
	}
}

// inside reports whether address a is in the mapping.
func (m *mapped) inside(a uintptr) bool {
	base := uintptr(unsafe.Pointer(unsafe.SliceData(m.data)))
	return a >= base && a < base+uintptr(len(m.data))
}

// next reads one record; the frame is valid until the next call. At the
// end of the mapping it returns io.EOF, and io.ErrUnexpectedEOF for a
// record cut short.
func (m *mapped) next() (frame []byte, ts time.Time, err error) {
	// One guarded stretch for the record's header and frame.
	defer m.fault(&err)
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	in, ts, err := m.nextInPlace()
	if err != nil {
		return nil, time.Time{}, err
	}
	frame = m.frameBuf(len(in))
	copy(frame, in)
	return frame, ts, nil
}

// nextInPlace is next without the frame's copy: the frame is the
// mapping's bytes. The caller runs it, and reads the frame, under guard.
func (m *mapped) nextInPlace() (frame []byte, ts time.Time, err error) {
	hl := 16 + m.extra
	if m.pos == len(m.data) {
		return nil, time.Time{}, io.EOF
	}
	if len(m.data)-m.pos < hl {
		return nil, time.Time{}, io.ErrUnexpectedEOF
	}
	incl, ts, err := m.record(m.data[m.pos : m.pos+hl])
	if err != nil {
		return nil, time.Time{}, err
	}
	if len(m.data)-m.pos-hl < incl {
		return nil, time.Time{}, io.ErrUnexpectedEOF
	}
	frame = m.data[m.pos+hl : m.pos+hl+incl : m.pos+hl+incl]
	m.pos += hl + incl
	return frame, ts, nil
}

// guard runs fn with the goroutine's panic-on-fault set: a fault on the
// mapping is errTruncatedUnder; any other panic goes on.
func (m *mapped) guard(fn func()) (err error) {
	defer m.fault(&err)
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	fn()
	return nil
}

func (m *mapped) unmap() error {
	if m.data == nil {
		return nil
	}
	err := unix.Munmap(m.data)
	m.data = nil
	if err != nil {
		return fmt.Errorf("unmap capture: %w", err)
	}
	return nil
}
