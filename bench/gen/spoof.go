package gen

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
)

// Spoofed victims and the forged tracker, in 10.95.0.0/16 (never the
// harness's hosts, never BitTorrent hosts).
var (
	SpoofDHT     = [4]byte{10, 95, 4, 10} // sends DHT queries nobody answers
	SpoofSYN     = [4]byte{10, 95, 4, 11} // sends SYNs nobody answers
	SpoofMSE     = [4]byte{10, 95, 4, 12} // sends MSE-shaped first packets nobody answers
	SpoofTracker = [4]byte{10, 95, 3, 1}  // "answers" 10.96.0.1 with 10.96.0.2's ports as peers
)

// SpoofCorpus is the forged traffic of the spoofing scenario, in the order
// to send it (one queue):
//   - a complete forged UDP tracker exchange (connect, its answer, announce,
//     its answer) in which the "tracker" tells the harness's normal host
//     10.96.0.1 that 10.96.0.2 on ports 5201 and 22 are peers;
//   - DHT ping queries from SpoofDHT to 200 addresses, SYNs from SpoofSYN
//     to 200, MSE-shaped first payloads (random, 96 to 608 bytes) from
//     SpoofMSE to 200 on high ports: single packets nobody answers.
func SpoofCorpus(mac net.HardwareAddr) [][]byte {
	var out [][]byte
	ip4 := func(a [4]byte) uint32 { return binary.BigEndian.Uint32(a[:]) }
	udpTo := func(src, dst uint32, sp, dp uint16, payload []byte) []byte {
		b := make([]byte, max(60, 42+len(payload)))
		eth(b, mac, 0x0800)
		ipv4(b[14:], 17, 28+len(payload), src, dst)
		fixChecksum(b[14:34])
		binary.BigEndian.PutUint16(b[34:], sp)
		binary.BigEndian.PutUint16(b[36:], dp)
		binary.BigEndian.PutUint16(b[38:], uint16(8+len(payload)))
		copy(b[42:], payload)
		return b
	}
	tcpTo := func(src, dst uint32, sp, dp uint16, flags uint8, payload []byte) []byte {
		b := make([]byte, max(60, 54+len(payload)))
		eth(b, mac, 0x0800)
		ipv4(b[14:], 6, 40+len(payload), src, dst)
		fixChecksum(b[14:34])
		binary.BigEndian.PutUint16(b[34:], sp)
		binary.BigEndian.PutUint16(b[36:], dp)
		binary.BigEndian.PutUint32(b[38:], 1000)
		b[46], b[47] = 5<<4, flags
		binary.BigEndian.PutUint16(b[48:], 64240)
		copy(b[54:], payload)
		return b
	}
	client, tracker := ip4([4]byte{10, 96, 0, 1}), ip4(SpoofTracker)
	connect := make([]byte, 16)
	binary.BigEndian.PutUint64(connect, 0x41727101980)
	binary.BigEndian.PutUint32(connect[12:], 0x1234)
	out = append(out, udpTo(client, tracker, 6881, 6969, connect))
	conn := make([]byte, 16)
	binary.BigEndian.PutUint32(conn[4:], 0x1234)
	binary.BigEndian.PutUint64(conn[8:], 0xc0ffee)
	out = append(out, udpTo(tracker, client, 6969, 6881, conn))
	announce := make([]byte, 98)
	binary.BigEndian.PutUint64(announce, 0xc0ffee)
	binary.BigEndian.PutUint32(announce[8:], 1)
	binary.BigEndian.PutUint32(announce[12:], 0x5678)
	copy(announce[36:], "-TR3000-forgedforged")
	out = append(out, udpTo(client, tracker, 6881, 6969, announce))
	resp := make([]byte, 20, 32)
	binary.BigEndian.PutUint32(resp, 1)
	binary.BigEndian.PutUint32(resp[4:], 0x5678)
	binary.BigEndian.PutUint32(resp[8:], 1800)
	for _, port := range []uint16{5201, 22} {
		resp = append(resp, 10, 96, 0, 2, byte(port>>8), byte(port))
	}
	out = append(out, udpTo(tracker, client, 6969, 6881, resp))

	rng := rand.New(rand.NewPCG(12, 95))
	for i := range 200 {
		dst := ip4([4]byte{10, 95, 5 + byte(i/250), byte(i%250 + 1)})
		q := []byte("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe")
		out = append(out, udpTo(ip4(SpoofDHT), dst, 6881, uint16(1024+rng.IntN(60000)), q))
		out = append(out, tcpTo(ip4(SpoofSYN), dst, uint16(1024+rng.IntN(60000)), uint16(1024+rng.IntN(60000)), 0x02, nil))
		p := make([]byte, 96+rng.IntN(513))
		for j := range p {
			p[j] = byte(rng.Uint32())
		}
		out = append(out, tcpTo(ip4(SpoofMSE), dst, uint16(1024+rng.IntN(60000)), uint16(1024+rng.IntN(60000)), 0x18, p))
	}
	return out
}

// fixChecksum sets the checksum of ip, an IPv4 header (IHL*4 bytes).
func fixChecksum(ip []byte) {
	ip[10], ip[11] = 0, 0
	var sum uint32
	for i := 0; i < len(ip); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	sum = sum&0xffff + sum>>16
	sum = sum&0xffff + sum>>16
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
}
