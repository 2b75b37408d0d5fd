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

func (b UTP) Type() uint8      { return b[0] >> 4 }
func (b UTP) Version() uint8   { return b[0] & 0x0f }
func (b UTP) Extension() uint8 { return b[1] }
func (b UTP) ConnID() uint16   { return binary.BigEndian.Uint16(b[2:4]) }
func (b UTP) Seq() uint16      { return binary.BigEndian.Uint16(b[16:18]) }
func (b UTP) Ack() uint16      { return binary.BigEndian.Uint16(b[18:20]) }

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

// UTPContinues reports whether packet b continues a uTP flow whose first
// packet (from the initiator) had connection id conn and whose latest
// initiator seq_nr was seq. fromInit tells which side sent b.
//
// The responder answers with the connection id of the initiator's SYN and
// acknowledges its seq_nr; the initiator's later packets use that id or id+1
// and advance seq_nr by a little. Repeating a packet (a retransmitted DNS
// query) does not advance it, so it does not continue a flow.
func UTPContinues(b []byte, fromInit bool, conn, seq uint16) bool {
	if !UTPShape(b) {
		return false
	}
	h := UTP(b)
	id := h.ConnID()
	if id != conn && id != conn+1 && id != conn-1 {
		return false
	}
	if fromInit {
		d := h.Seq() - seq
		return d >= 1 && d <= 64
	}
	d := seq - h.Ack()
	return d <= 64 || h.Ack()-seq <= 2
}
