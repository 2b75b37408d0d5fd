// Package xsk is swarmguard's AF_XDP socket: github.com/asavie/xdp creates
// the socket, its UMEM and rings and binds it; the rings are then driven by
// this package through the socket's fd with golang.org/x/sys, because asavie
// falls short on the data path:
//   - its Receive marks frames free at once and its Complete does not return
//     the completed addresses, so frames cannot be owned and recycled;
//   - its ring producer/consumer updates have their memory fences commented
//     out; here every index is read and written with sync/atomic;
//   - its GetDescs scans every frame, and Transmit panics on errors such as
//     ENETDOWN: here free frames are a stack and errors are returned;
//   - its Close never unmaps its four ring mappings, which keep the socket
//     (and its queue binding) alive until the process exits: Close here
//     unmaps them first (found by reflection, as asavie does not export them).
//
// The UMEM is split: the first half of the frames is lent to the kernel
// through the fill ring (receive), the second half is kept for transmit.
//
// A bridge queue's two sockets can share one UMEM (OpenShared, the
// kernel's XDP_SHARED_UMEM with each socket's own fill and completion
// rings): the second socket takes the first's transmit half as its receive
// frames, and a frame received on one port is sent from the other as it
// is (Forward), with no copy; its completion returns it to its owner's
// fill ring.
//
// More sockets can join a queue (OpenSibling): the kernel gives the
// sockets of one device queue one fill and one completion ring, so that
// several workers share a 1-queue port, each with its own rx and tx ring.
// The shared rings then have several producers (fill) and consumers
// (completion): a worker reserves its slots with a compare-and-swap on a
// head index of the queue's own and publishes them in reservation order,
// as a multi-producer ring does; no lock is taken.
package xsk

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/asavie/xdp"
	"golang.org/x/sys/unix"
)

// Options size a socket. Zero fields take the defaults (docs/DESIGN.md: the
// asavie defaults of 128 frames and 64-entry rings overrun).
type Options struct {
	Frames    int // UMEM frames, a power of two (default 8192)
	FrameSize int // bytes per frame (default 2048)
	RingSize  int // entries of each of the four rings, a power of two (default 2048)
}

func (o *Options) defaults() {
	if o.Frames == 0 {
		o.Frames = 8192
	}
	if o.FrameSize == 0 {
		o.FrameSize = 2048
	}
	if o.RingSize == 0 {
		o.RingSize = 2048
	}
}

type ring struct {
	prod, cons *uint32
	mask       uint32
	mem        []byte
}

type addrRing struct {
	ring
	descs []uint64
}

// sharedHeads are the reservation heads of a queue's shared fill and
// completion rings: fill is the next slot a producer may take (ahead of
// the ring's producer index by what is reserved and not yet published),
// comp the next completion a consumer may take.
type sharedHeads struct {
	fill, comp atomic.Uint32
}

type descRing struct {
	ring
	descs []unix.XDPDesc
}

// Socket is one AF_XDP socket bound to a device queue.
type Socket struct {
	xs        *xdp.Socket
	fd        int
	off       unix.XDPMmapOffsets
	ringSize  int
	fill      addrRing
	comp      addrRing
	rx        descRing
	tx        descRing
	frameSize uint64
	txFree    []uint64 // transmit frames not in flight
	rxPending []uint64 // receive frames the fill ring had no room for yet
	outTx     int      // own transmit frames on the tx ring or in the kernel
	rxFrames  int      // this socket's receive frames
	txFrames  int      // this socket's transmit frames (0 when shared: it sends its peer's frames)
	rxLo      uint64   // receive frames are [rxLo, rxLo+rxFrames*frameSize)
	// A socket sharing its UMEM with peer (OpenShared): lent counts this
	// socket's receive frames on the peer's tx ring, borrowed the peer's
	// frames on this one's.
	peer           *Socket
	lent, borrowed int
	owned          bool // the asavie socket (and UMEM) is this one's; a shared socket has only its fd
	// heads is set when other sockets of the same queue share this one's
	// fill and completion rings (OpenSibling); rings is false on a sibling,
	// whose fill and completion rings are its first socket's mappings.
	heads          *sharedHeads
	rings          bool
	ifindex, queue int
	frames         int // the UMEM's frames
	// Counters, one owner.
	Received, Sent, TxFull uint64
}

// ErrQueueBusy means another AF_XDP socket is bound to the queue.
var ErrQueueBusy = errors.New("queue busy")

// ErrNoAFXDP means the kernel refused an AF_XDP socket.
var ErrNoAFXDP = errors.New("AF_XDP sockets unavailable (needs root and a kernel with AF_XDP)")

// Open creates a socket on ifindex's rx queue and lends half its frames to
// the kernel for receiving.
func Open(ifindex, queue int, o Options) (*Socket, error) {
	o.defaults()
	if o.Frames&(o.Frames-1) != 0 || o.RingSize&(o.RingSize-1) != 0 {
		return nil, fmt.Errorf("xsk: frames (%d) and ring size (%d) must be powers of two", o.Frames, o.RingSize)
	}
	xs, err := xdp.NewSocket(ifindex, queue, &xdp.SocketOptions{
		NumFrames: o.Frames, FrameSize: o.FrameSize,
		FillRingNumDescs: o.RingSize, CompletionRingNumDescs: o.RingSize,
		RxRingNumDescs: o.RingSize, TxRingNumDescs: o.RingSize,
	})
	if err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EAFNOSUPPORT) {
			return nil, fmt.Errorf("xsk on ifindex %d queue %d: %w: %v", ifindex, queue, ErrNoAFXDP, err)
		}
		// asavie formats its errors with %v: the errno is only in the text.
		if strings.Contains(err.Error(), syscall.EBUSY.Error()) {
			return nil, fmt.Errorf("queue %d already in use by another AF_XDP socket (is swarmguard already running?): %w", queue, ErrQueueBusy)
		}
		return nil, fmt.Errorf("xsk on ifindex %d queue %d: %v", ifindex, queue, err)
	}
	s := &Socket{xs: xs, fd: xs.FD(), frameSize: uint64(o.FrameSize), owned: true, ifindex: ifindex, queue: queue, frames: o.Frames}
	if err := s.mapRings(o.RingSize, true); err != nil {
		xs.Close()
		return nil, err
	}
	half := o.Frames / 2
	s.rxFrames, s.txFrames = half, o.Frames-half
	for i := half; i < o.Frames; i++ {
		s.txFree = append(s.txFree, uint64(i)*s.frameSize)
	}
	// Half the frames may be more than the fill ring holds (4,096 vs 2,048
	// with the defaults): the rest wait in rxPending and go to the ring as
	// it empties, so a worker holding a batch does not starve the kernel.
	s.rxPending = make([]uint64, 0, half)
	for i := 0; i < half; i++ {
		s.rxPending = append(s.rxPending, uint64(i)*s.frameSize)
	}
	s.Fill(nil)
	return s, nil
}

// OpenShared creates a socket on ifindex's rx queue that shares owner's
// UMEM (a bridge queue's other port). It takes owner's transmit frames as
// its receive frames: from then on, each sends the other's received frames
// (Forward) and neither has frames of its own to transmit. owner must be
// fresh from Open (nothing sent), and each may share with one socket only.
// A kernel that refuses (older than 5.10, or a driver that cannot) makes
// it fail: the caller opens a socket of its own instead.
func OpenShared(ifindex, queue int, owner *Socket) (*Socket, error) {
	if owner.peer != nil || owner.outTx != 0 || owner.txFrames == 0 {
		return nil, errors.New("xsk: shared UMEM: the owner must be fresh and not shared yet")
	}
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("xsk on ifindex %d queue %d: %w: %v", ifindex, queue, ErrNoAFXDP, err)
	}
	s := &Socket{xs: owner.xs, fd: fd, frameSize: owner.frameSize, ifindex: ifindex, queue: queue, frames: owner.frames}
	fail := func(err error) (*Socket, error) {
		s.unmapRings()
		unix.Close(fd)
		return nil, err
	}
	for _, opt := range []int{unix.XDP_UMEM_FILL_RING, unix.XDP_UMEM_COMPLETION_RING, unix.XDP_RX_RING, unix.XDP_TX_RING} {
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, opt, owner.ringSize); err != nil {
			return fail(fmt.Errorf("xsk: shared UMEM: ring size: %w", err))
		}
	}
	if err := s.mapRings(owner.ringSize, true); err != nil {
		return fail(err)
	}
	sa := &unix.SockaddrXDP{Flags: unix.XDP_SHARED_UMEM, Ifindex: uint32(ifindex), QueueID: uint32(queue), SharedUmemFD: uint32(owner.fd)}
	if err := unix.Bind(fd, sa); err != nil {
		if errors.Is(err, unix.EBUSY) {
			return fail(fmt.Errorf("queue %d already in use by another AF_XDP socket (is swarmguard already running?): %w", queue, ErrQueueBusy))
		}
		return fail(fmt.Errorf("xsk on ifindex %d queue %d: bind to a shared UMEM: %w", ifindex, queue, err))
	}
	// The owner's transmit frames become this socket's receive frames.
	s.rxPending = append(make([]uint64, 0, len(owner.txFree)), owner.txFree...)
	s.rxFrames, s.rxLo = len(owner.txFree), uint64(owner.rxFrames)*owner.frameSize
	owner.txFree, owner.txFrames = owner.txFree[:0], 0
	s.peer, owner.peer = owner, s
	s.Fill(nil)
	return s, nil
}

// Shares reports whether s sends o's frames as they are (OpenShared).
func (s *Socket) Shares(o *Socket) bool { return s.peer != nil && s.peer == o }

// Forward sends the frame d that s received from its peer socket, as it
// is: the frame is the peer's until the kernel completes it, then goes back
// to s's fill ring. False when the peer's tx ring is full: the frame is
// still s's (give it back with Fill).
func (s *Socket) Forward(d unix.XDPDesc) bool {
	o := s.peer
	prod := atomic.LoadUint32(o.tx.prod)
	if prod-atomic.LoadUint32(o.tx.cons) > o.tx.mask {
		o.TxFull++
		return false
	}
	o.tx.descs[prod&o.tx.mask] = unix.XDPDesc{Addr: d.Addr, Len: d.Len}
	atomic.StoreUint32(o.tx.prod, prod+1)
	s.lent++
	o.borrowed++
	o.Sent++
	return true
}

// ownsRx reports whether addr is one of s's receive frames.
func (s *Socket) ownsRx(addr uint64) bool {
	return addr >= s.rxLo && addr < s.rxLo+uint64(s.rxFrames)*s.frameSize
}

// FD is the socket's file descriptor (for the XSKMAP).
func (s *Socket) FD() int { return s.fd }

// OpenSibling creates another socket on first's device queue and UMEM:
// the kernel gives it first's fill and completion rings and a rx and tx
// ring of its own, and the XDP program may redirect any of the queue's
// packets to either. With peer, a sibling of first's peer (OpenShared),
// the two become a bridge pair that forwards each other's frames. Frames
// are the queue's, not a socket's: whichever sibling reaps a completion
// gives the frame back to the shared fill ring. A sibling has no transmit
// frames of its own, so a queue with siblings only forwards (a bridge on
// a shared UMEM) or only receives (a monitor port). Call before traffic
// flows, from one goroutine; the sockets are then used concurrently, one
// goroutine each.
func OpenSibling(first, peer *Socket) (*Socket, error) {
	if !first.rings {
		return nil, errors.New("xsk: sibling: join a queue through its first socket")
	}
	if peer != nil && (peer.peer != nil || first.peer == nil || peer.fill.prod != first.peer.fill.prod) {
		return nil, errors.New("xsk: sibling: a bridge sibling pairs with an unpaired sibling of the first's peer")
	}
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("xsk on ifindex %d queue %d: %w: %v", first.ifindex, first.queue, ErrNoAFXDP, err)
	}
	s := &Socket{xs: first.xs, fd: fd, frameSize: first.frameSize, ifindex: first.ifindex, queue: first.queue, frames: first.frames,
		rxLo: first.rxLo, rxFrames: first.rxFrames}
	fail := func(err error) (*Socket, error) {
		s.unmapRings()
		unix.Close(fd)
		return nil, err
	}
	// Only the rx and tx rings: the kernel refuses (EINVAL) a fill or
	// completion ring on a socket that joins a bound queue.
	for _, opt := range []int{unix.XDP_RX_RING, unix.XDP_TX_RING} {
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, opt, first.ringSize); err != nil {
			return fail(fmt.Errorf("xsk: sibling: ring size: %w", err))
		}
	}
	if err := s.mapRings(first.ringSize, false); err != nil {
		return fail(err)
	}
	sa := &unix.SockaddrXDP{Flags: unix.XDP_SHARED_UMEM, Ifindex: uint32(first.ifindex), QueueID: uint32(first.queue), SharedUmemFD: uint32(first.fd)}
	if err := unix.Bind(fd, sa); err != nil {
		return fail(fmt.Errorf("xsk on ifindex %d queue %d: bind a second socket to the queue: %w", first.ifindex, first.queue, err))
	}
	if first.heads == nil {
		first.heads = &sharedHeads{}
		first.heads.fill.Store(atomic.LoadUint32(first.fill.prod))
		first.heads.comp.Store(atomic.LoadUint32(first.comp.cons))
	}
	s.heads, s.fill, s.comp = first.heads, first.fill, first.comp
	s.fill.mem, s.comp.mem = nil, nil // first's mappings: first unmaps them
	// Any of the queue's receive frames may come back through this one.
	s.rxPending = make([]uint64, 0, s.rxFrames)
	if peer != nil {
		s.peer, peer.peer = peer, s
	}
	return s, nil
}

// Account checks where every frame of the UMEM that socks share is, and
// returns how many frames are nowhere (lost) and how many are in more than
// one place (double-owned): in a fill, completion, rx or tx ring between
// its consumer and producer, waiting to be filled, or free to transmit.
// It reaps completions first. socks must be every socket of the UMEM,
// with no traffic in flight and no frame held by a caller; otherwise
// frames the kernel or a caller holds count as lost.
func Account(socks ...*Socket) (lost, doubled int) {
	if len(socks) == 0 {
		return 0, 0
	}
	for _, s := range socks {
		s.Reap()
	}
	seen := make([]int, socks[0].frames)
	mark := func(a uint64) {
		if i := a / socks[0].frameSize; i < uint64(len(seen)) {
			seen[i]++
		} else {
			lost-- // not a frame of this UMEM: never hidden by a count
		}
	}
	for _, s := range socks {
		if s.rings { // each shared fill and completion ring once
			for c := atomic.LoadUint32(s.fill.cons); c != atomic.LoadUint32(s.fill.prod); c++ {
				mark(s.fill.descs[c&s.fill.mask])
			}
			for c := atomic.LoadUint32(s.comp.cons); c != atomic.LoadUint32(s.comp.prod); c++ {
				mark(s.comp.descs[c&s.comp.mask])
			}
		}
		for c := atomic.LoadUint32(s.rx.cons); c != atomic.LoadUint32(s.rx.prod); c++ {
			mark(s.rx.descs[c&s.rx.mask].Addr)
		}
		for c := atomic.LoadUint32(s.tx.cons); c != atomic.LoadUint32(s.tx.prod); c++ {
			mark(s.tx.descs[c&s.tx.mask].Addr)
		}
		for _, a := range s.rxPending {
			mark(a)
		}
		for _, a := range s.txFree {
			mark(a)
		}
	}
	for _, n := range seen {
		switch {
		case n == 0:
			lost++
		case n > 1:
			doubled += n - 1
		}
	}
	return lost, doubled
}

// AccountAll is Account for sockets on any number of UMEMs: each UMEM's
// sockets are counted together (a bridge queue's two ports and its
// siblings share one; a copying bridge's ports have one each).
func AccountAll(socks []*Socket) (lost, doubled int) {
	var umems []*xdp.Socket
	groups := map[*xdp.Socket][]*Socket{}
	for _, s := range socks {
		if _, ok := groups[s.xs]; !ok {
			umems = append(umems, s.xs)
		}
		groups[s.xs] = append(groups[s.xs], s)
	}
	for _, u := range umems {
		l, d := Account(groups[u]...)
		lost, doubled = lost+l, doubled+d
	}
	return lost, doubled
}

// publish moves a shared ring's index from from to to once the slots
// reserved before this caller's are published: reservations are published
// in the order they were taken, as the kernel reads the index, not the
// reservations. The wait is for another worker's few stores; it yields
// the CPU if that worker's thread was preempted mid-way.
func publish(index *uint32, from, to uint32) {
	for i := 0; atomic.LoadUint32(index) != from; i++ {
		if i&63 == 63 {
			unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
		}
	}
	atomic.StoreUint32(index, to)
}

func (s *Socket) mapRings(n int, fillComp bool) error {
	var off unix.XDPMmapOffsets
	size := uint32(unsafe.Sizeof(off))
	if _, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s.fd), unix.SOL_XDP, unix.XDP_MMAP_OFFSETS,
		uintptr(unsafe.Pointer(&off)), uintptr(unsafe.Pointer(&size)), 0); errno != 0 {
		return fmt.Errorf("xsk: XDP_MMAP_OFFSETS: %w", errno)
	}
	s.off, s.ringSize, s.rings = off, n, fillComp
	var err error
	dsz := int(unsafe.Sizeof(unix.XDPDesc{}))
	if s.rx.ring, err = mapRing(s.fd, unix.XDP_PGOFF_RX_RING, off.Rx, n, dsz); err != nil {
		return err
	}
	s.rx.descs = unsafe.Slice((*unix.XDPDesc)(unsafe.Pointer(&s.rx.mem[off.Rx.Desc])), n)
	if s.tx.ring, err = mapRing(s.fd, unix.XDP_PGOFF_TX_RING, off.Tx, n, dsz); err != nil {
		return err
	}
	s.tx.descs = unsafe.Slice((*unix.XDPDesc)(unsafe.Pointer(&s.tx.mem[off.Tx.Desc])), n)
	if !fillComp {
		return nil
	}
	if s.fill.ring, err = mapRing(s.fd, unix.XDP_UMEM_PGOFF_FILL_RING, off.Fr, n, 8); err != nil {
		return err
	}
	s.fill.descs = unsafe.Slice((*uint64)(unsafe.Pointer(&s.fill.mem[off.Fr.Desc])), n)
	if s.comp.ring, err = mapRing(s.fd, unix.XDP_UMEM_PGOFF_COMPLETION_RING, off.Cr, n, 8); err != nil {
		return err
	}
	s.comp.descs = unsafe.Slice((*uint64)(unsafe.Pointer(&s.comp.mem[off.Cr.Desc])), n)
	return nil
}

func mapRing(fd int, pgoff int64, o unix.XDPRingOffset, n, elem int) (ring, error) {
	mem, err := unix.Mmap(fd, pgoff, int(o.Desc)+n*elem, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return ring{}, fmt.Errorf("xsk: mmap ring at %#x: %w", pgoff, err)
	}
	return ring{
		prod: (*uint32)(unsafe.Pointer(&mem[o.Producer])),
		cons: (*uint32)(unsafe.Pointer(&mem[o.Consumer])),
		mask: uint32(n - 1),
		mem:  mem,
	}, nil
}

// Frame returns the bytes of the frame at addr, len bytes long.
func (s *Socket) Frame(addr uint64, n uint32) []byte {
	return s.xs.GetFrame(xdp.Desc{Addr: addr, Len: n})
}

// Fill lends receive frames to the kernel: addrs (frames Receive handed
// out) and those earlier calls had no room for. What the fill ring cannot
// take now waits for the next call, so no frame is ever lost; calling Fill
// with nothing tops the ring up. It returns how many frames the ring took.
func (s *Socket) Fill(addrs []uint64) int {
	s.rxPending = append(s.rxPending, addrs...) // never grows: at most the receive frames
	if s.heads != nil {
		return s.fillShared()
	}
	prod := atomic.LoadUint32(s.fill.prod)
	cons := atomic.LoadUint32(s.fill.cons)
	free := int(s.fill.mask+1) - int(prod-cons)
	n := min(free, len(s.rxPending))
	from := len(s.rxPending) - n
	for i, a := range s.rxPending[from:] {
		s.fill.descs[(prod+uint32(i))&s.fill.mask] = a
	}
	s.rxPending = s.rxPending[:from]
	atomic.StoreUint32(s.fill.prod, prod+uint32(n))
	return n
}

// fillShared is Fill on a fill ring the queue's sockets share.
func (s *Socket) fillShared() int {
	for {
		head := s.heads.fill.Load()
		free := int(s.fill.mask+1) - int(head-atomic.LoadUint32(s.fill.cons))
		n := min(free, len(s.rxPending))
		if n <= 0 {
			return 0
		}
		if !s.heads.fill.CompareAndSwap(head, head+uint32(n)) {
			continue // another worker reserved first
		}
		from := len(s.rxPending) - n
		for i, a := range s.rxPending[from:] {
			s.fill.descs[(head+uint32(i))&s.fill.mask] = a
		}
		s.rxPending = s.rxPending[:from]
		publish(s.fill.prod, head, head+uint32(n))
		return n
	}
}

// Receive takes up to len(out) received descriptors. The frames are the
// caller's until it gives them back with Fill.
func (s *Socket) Receive(out []unix.XDPDesc) int {
	cons := atomic.LoadUint32(s.rx.cons)
	prod := atomic.LoadUint32(s.rx.prod)
	n := min(int(prod-cons), len(out))
	for i := 0; i < n; i++ {
		out[i] = s.rx.descs[(cons+uint32(i))&s.rx.mask]
	}
	atomic.StoreUint32(s.rx.cons, cons+uint32(n))
	s.Received += uint64(n)
	return n
}

// TxFrame returns a free transmit frame's address and bytes, or false when
// all are in flight (reap completions first).
func (s *Socket) TxFrame() (uint64, []byte, bool) {
	if len(s.txFree) == 0 {
		s.Reap()
		if len(s.txFree) == 0 {
			s.TxFull++
			return 0, nil, false
		}
	}
	a := s.txFree[len(s.txFree)-1]
	s.txFree = s.txFree[:len(s.txFree)-1]
	return a, s.xs.GetFrame(xdp.Desc{Addr: a, Len: uint32(s.frameSize)}), true
}

// Send queues frame addr with n bytes on the tx ring (Kick sends it).
// A frame that does not fit goes back to the free list and false is returned.
func (s *Socket) Send(addr uint64, n uint32) bool {
	prod := atomic.LoadUint32(s.tx.prod)
	cons := atomic.LoadUint32(s.tx.cons)
	if prod-cons > s.tx.mask {
		s.txFree = append(s.txFree, addr)
		s.TxFull++
		return false
	}
	s.tx.descs[prod&s.tx.mask] = unix.XDPDesc{Addr: addr, Len: n}
	atomic.StoreUint32(s.tx.prod, prod+1)
	s.outTx++
	s.Sent++
	return true
}

// Kick asks the kernel to send what the tx ring holds. In copy mode a
// sendto moves a limited number of packets, so it is repeated while the
// ring is not empty (bounded).
func (s *Socket) Kick() error {
	for i := 0; i < 64; i++ {
		if atomic.LoadUint32(s.tx.cons) == atomic.LoadUint32(s.tx.prod) {
			return nil
		}
		_, _, errno := unix.Syscall6(unix.SYS_SENDTO, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0, unix.EAGAIN, unix.EBUSY, unix.ENOBUFS:
		case unix.EINTR:
			continue
		default:
			return fmt.Errorf("xsk: sendto: %w", errno)
		}
		s.Reap()
	}
	return nil
}

// Reap takes completed transmit frames back: its own to the free list,
// the peer's (Forward) to the peer's fill ring.
func (s *Socket) Reap() {
	cons := atomic.LoadUint32(s.comp.cons)
	prod := atomic.LoadUint32(s.comp.prod)
	if s.heads != nil {
		// Shared with the queue's other sockets: reserve what to take. The
		// head is read before the producer index, so it is never past it.
		cons = s.heads.comp.Load()
		prod = atomic.LoadUint32(s.comp.prod)
		if cons == prod || !s.heads.comp.CompareAndSwap(cons, prod) {
			return // nothing, or another worker is taking it now
		}
	}
	for c := cons; c != prod; c++ {
		a := s.comp.descs[c&s.comp.mask]
		if o := s.peer; o != nil && o.ownsRx(a) {
			o.rxPending = append(o.rxPending, a)
			o.lent--
			s.borrowed--
			continue
		}
		s.txFree = append(s.txFree, a)
		s.outTx--
	}
	if s.heads != nil {
		publish(s.comp.cons, cons, prod)
	} else {
		atomic.StoreUint32(s.comp.cons, prod)
	}
	if s.peer != nil && len(s.peer.rxPending) > 0 {
		s.peer.Fill(nil)
	}
}

// Statistics are the kernel's counters of the socket (XDP_STATISTICS):
// frames it dropped because the rx ring was full or no fill frame was
// there, and descriptors it found invalid.
func (s *Socket) Statistics() (unix.XDPStatistics, error) {
	var st unix.XDPStatistics
	n := uint32(unsafe.Sizeof(st))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s.fd), unix.SOL_XDP, unix.XDP_STATISTICS,
		uintptr(unsafe.Pointer(&st)), uintptr(unsafe.Pointer(&n)), 0)
	if errno != 0 {
		return st, fmt.Errorf("xsk: XDP_STATISTICS: %w", errno)
	}
	return st, nil
}

// Close releases the socket, its rings and UMEM, so that the queue can be
// bound again at once.
func (s *Socket) Close() error {
	s.unmapRings()
	if !s.owned {
		// A shared socket: its fd only. The UMEM lives on in the kernel
		// until the last socket using it is closed.
		return unix.Close(s.fd)
	}
	s.unmapAsavieRings()
	return s.xs.Close()
}

func (s *Socket) unmapRings() {
	for _, m := range []*[]byte{&s.fill.mem, &s.comp.mem, &s.rx.mem, &s.tx.mem} {
		if *m != nil {
			unix.Munmap(*m)
			*m = nil
		}
	}
}

// unmapAsavieRings unmaps the ring mappings asavie made and never unmaps.
// Each ring's descriptor slice starts off.X.Desc bytes into its mapping.
func (s *Socket) unmapAsavieRings() {
	v := reflect.ValueOf(s.xs).Elem()
	dsz := int(unsafe.Sizeof(unix.XDPDesc{}))
	for _, r := range []struct {
		field string
		desc  uint64
		elem  int
	}{{"fillRing", s.off.Fr.Desc, 8}, {"completionRing", s.off.Cr.Desc, 8}, {"rxRing", s.off.Rx.Desc, dsz}, {"txRing", s.off.Tx.Desc, dsz}} {
		d := v.FieldByName(r.field).FieldByName("Descs")
		if !d.IsValid() || d.Len() == 0 {
			continue
		}
		base := d.Pointer() - uintptr(r.desc)
		unix.Syscall(unix.SYS_MUNMAP, base, uintptr(int(r.desc)+s.ringSize*r.elem), 0)
	}
}
