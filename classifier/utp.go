package classifier

import "encoding/binary"

// UTP is a BEP 29 uTP header: a view over the first 20 bytes of a UDP payload.
type UTP []byte

// UTPMinimumSize is the uTP header length without extensions.
const UTPMinimumSize = 20

// uTP packet types.
const (
	UTPData  = 0
	UTPFin   = 1
	UTPState = 2
	UTPReset = 3
	UTPSyn   = 4
)

func (b UTP) Type() uint8       { return b[0] >> 4 }
func (b UTP) Version() uint8    { return b[0] & 0x0f }
func (b UTP) Extension() uint8  { return b[1] }
func (b UTP) ConnID() uint16    { return binary.BigEndian.Uint16(b[2:4]) }
func (b UTP) Timestamp() uint32 { return binary.BigEndian.Uint32(b[4:8]) }
func (b UTP) Window() uint32    { return binary.BigEndian.Uint32(b[12:16]) }
func (b UTP) Seq() uint16       { return binary.BigEndian.Uint16(b[16:18]) }
func (b UTP) Ack() uint16       { return binary.BigEndian.Uint16(b[18:20]) }

// UTPShape reports whether b is a well-formed uTP packet by itself: version
// 1, a known type, and an extension chain that ends inside the payload. One
// such packet is weak evidence: a 20-byte DNS query can have this shape, which
// is why a flow needs UTPContinues across packets before it counts.
func UTPShape(b []byte) bool {
	if len(b) < UTPMinimumSize {
		return false
	}
	h := UTP(b)
	if h.Version() != 1 || h.Type() > UTPSyn {
		return false
	}
	ext, rest := h.Extension(), b[UTPMinimumSize:]
	for i := 0; ext != 0; i++ {
		// Known extensions: 1 selective ack (len multiple of 4, >= 4), 2 the
		// obsolete extension bits (len 8), 3 close reason (len 4).
		if ext > 4 || i == 4 || len(rest) < 2 {
			return false
		}
		next, n := rest[0], int(rest[1])
		if n == 0 || len(rest) < 2+n || (ext == 1 && n%4 != 0) {
			return false
		}
		ext, rest = next, rest[2+n:]
	}
	// Only DATA packets carry payload after the header.
	return h.Type() == UTPData || len(rest) == 0
}

// utpMaxWindow bounds a plausible wnd_size (the sender's receive buffer):
// clients advertise at most a few MB; ASCII or 0xff filler reads as more.
const utpMaxWindow = 1 << 26

// sameConn reports whether connection id id belongs to the connection whose
// reference packet had conn: the initiator sends with its SYN's id + 1, the
// responder with the SYN's id.
func sameConn(id, conn uint16) bool { return id == conn || id == conn+1 || id == conn-1 }

// UTPAdvances reports whether packet b, from the same side as the reference
// packet (connection conn, seq_nr seq, timestamp ts), moves that side's
// connection forward as a live uTP sender does: the same connection, seq_nr
// the same (ST_STATE) or a little ahead (ST_DATA), and a microsecond
// timestamp strictly later, by no more than maxDt (the flow's age plus a
// second). A field that stays constant across packets (filler, a
// retransmitted query) does not advance, and neither does anything whose
// window is implausible.
func UTPAdvances(b []byte, conn, seq uint16, ts, maxDt uint32) bool {
	if !UTPShape(b) {
		return false
	}
	h := UTP(b)
	if !sameConn(h.ConnID(), conn) || h.Window() > utpMaxWindow {
		return false
	}
	d := h.Seq() - seq
	dt := h.Timestamp() - ts
	return d <= 64 && dt >= 1 && dt <= maxDt
}

// UTPAnswers reports whether packet b, from the other side, answers the
// reference side: the same connection and an ack_nr at or a little behind
// the reference side's latest seq_nr.
func UTPAnswers(b []byte, conn, seq uint16) bool {
	if !UTPShape(b) {
		return false
	}
	h := UTP(b)
	if !sameConn(h.ConnID(), conn) || h.Window() > utpMaxWindow {
		return false
	}
	return seq-h.Ack() <= 64 || h.Ack()-seq <= 2
}
