package gen

import (
	"encoding/binary"
	"net"
)

// Malformed is one kind of bad frame the flood of malformed traffic
// sends, with the frame.
type Malformed struct {
	Kind  string
	Frame []byte
}

// eth writes an Ethernet header with ethertype et.
func eth(b []byte, mac net.HardwareAddr, et uint16) {
	for i := 0; i < 6; i++ {
		b[i] = 0x02
	}
	copy(b[6:12], mac)
	binary.BigEndian.PutUint16(b[12:], et)
}

// ipv4 writes a 20-byte IPv4 header at b for proto with total length tot.
func ipv4(b []byte, proto uint8, tot int, src, dst uint32) {
	b[0], b[1] = 0x45, 0
	binary.BigEndian.PutUint16(b[2:], uint16(tot))
	b[8], b[9] = 64, proto
	binary.BigEndian.PutUint32(b[12:], src)
	binary.BigEndian.PutUint32(b[16:], dst)
}

// MalformedCorpus is every kind of bad frame an edge sees, built around a
// flow of 10.95.0.0/16 addresses (never the harness's): headers cut short
// or inconsistent, extension chains at and past the decoder's bound, UDP
// lengths of zero and past the frame, peer-wire, bencode, uTP and KRPC
// payloads with lying lengths, VLAN stacks, runts and jumbos. Variation i
// changes the addresses so that the frames are many flows.
func MalformedCorpus(mac net.HardwareAddr, i uint32) []Malformed {
	src, dst := 10<<24|95<<16|(i&0xff)<<8|1, 10<<24|95<<16|(i&0xff)<<8|2
	var out []Malformed
	add := func(kind string, b []byte) { out = append(out, Malformed{kind, b}) }
	udp := func(payload []byte, ulen int) []byte {
		b := make([]byte, 14+20+8+len(payload))
		eth(b, mac, 0x0800)
		ipv4(b[14:], 17, 20+8+len(payload), src, dst)
		binary.BigEndian.PutUint16(b[34:], uint16(40000+i%1000))
		binary.BigEndian.PutUint16(b[36:], 6881)
		binary.BigEndian.PutUint16(b[38:], uint16(ulen))
		copy(b[42:], payload)
		return b
	}
	tcp := func(payload []byte, doff uint8, flags uint8) []byte {
		b := make([]byte, 14+20+20+len(payload))
		eth(b, mac, 0x0800)
		ipv4(b[14:], 6, 20+20+len(payload), src, dst)
		binary.BigEndian.PutUint16(b[34:], uint16(40000+i%1000))
		binary.BigEndian.PutUint16(b[36:], 51413)
		b[46], b[47] = doff<<4, flags
		copy(b[54:], payload)
		return b
	}
	// Link and IP headers.
	add("runt", make([]byte, 10))
	b := make([]byte, 20)
	eth(b, mac, 0x0800)
	add("ipv4 cut", b)
	b = udp(nil, 8)
	b[14] = 0x44 // IHL 4: under the minimum
	add("ipv4 ihl<5", b)
	b = udp(nil, 8)
	b[14] = 0x4f // IHL 15: past the frame
	add("ipv4 ihl past frame", b)
	b = udp(nil, 8)
	binary.BigEndian.PutUint16(b[16:], 9000) // total length past the frame
	add("ipv4 total length past frame", b)
	b = udp(nil, 8)
	binary.BigEndian.PutUint16(b[16:], 10) // total length under the header
	add("ipv4 total length < header", b)
	b = udp(nil, 8)
	b[14] = 0x75 // version 7
	add("ip version 7", b)
	// IPv6 extension chains.
	for _, n := range []int{8, 9, 64} {
		b = make([]byte, 14+40+n*8+8)
		eth(b, mac, 0x86dd)
		ip := b[14:]
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(n*8+8))
		ip[6], ip[7] = 0, 64 // hop-by-hop first
		ip[8], ip[24] = 0xfd, 0xfd
		ip[23], ip[39] = byte(i), byte(i+1)
		for j := 0; j < n; j++ {
			e := ip[40+j*8:]
			e[0] = 60 // next: destination options
			if j == n-1 {
				e[0] = 17
			}
		}
		add("ipv6 extension chain", b)
	}
	b = make([]byte, 14+40+4)
	eth(b, mac, 0x86dd)
	b[14] = 0x60
	binary.BigEndian.PutUint16(b[18:], 4)
	b[20] = 0 // hop-by-hop, cut after 4 bytes
	add("ipv6 extension cut", b)
	// TCP and UDP.
	add("tcp data offset 0", tcp([]byte("x"), 0, 0x18))
	add("tcp data offset past segment", tcp([]byte("x"), 15, 0x18))
	add("udp length 0", udp([]byte("payload"), 0))
	add("udp length past frame", udp([]byte("payload"), 60000))
	add("udp length < 8", udp([]byte("payload"), 3))
	// Payloads whose own lengths lie.
	hs := append([]byte{19}, []byte("BitTorrent protocol")...)
	add("peer wire handshake cut", tcp(hs[:12], 5, 0x18))
	msg := make([]byte, 9)
	binary.BigEndian.PutUint32(msg, 0xfffffff0) // a message length of 4 GiB
	msg[4] = 7
	add("peer wire length 4 GiB", tcp(msg, 5, 0x18))
	add("bencode unterminated", udp([]byte("d1:ad2:id20:abcd1:q4:ping"), 8+25))
	add("bencode huge string", udp([]byte("d1:q99999999999:x"), 8+17))
	add("bencode deep", udp([]byte("llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllll"), 8+68))
	add("krpc lying", udp([]byte("d1:rd2:id20:"+string(make([]byte, 5))+"e1:y1:re"), 8+8+12+5))
	utp := make([]byte, 20)
	utp[0], utp[1] = 0x41, 7 // ST_DATA v1, an extension chain that never ends
	add("utp extension loop", udp(utp, 28))
	add("utp cut", udp([]byte{0x41, 0}, 10))
	// VLAN stacks and sizes.
	b = make([]byte, 14+4*6+20+8)
	eth(b, mac, 0x8100)
	for j := 0; j < 6; j++ {
		binary.BigEndian.PutUint16(b[14+j*4:], uint16(j+1))
		binary.BigEndian.PutUint16(b[14+j*4+2:], 0x8100)
	}
	add("vlan stack of 6", b)
	b = udp(make([]byte, 4000-42), 4000-34) // over a 1500 MTU, within a UMEM frame
	add("jumbo", b)
	b = make([]byte, 60)
	eth(b, mac, 0x88cc) // LLDP
	add("not ip", b)
	return out
}
