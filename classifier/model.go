package classifier

import (
	"math"
	"sort"
)

// Feature indexes. Flow features come first, host features after
// FirstHostFeature. Every feature is scaled to [0, 1]; docs/FEATURES.md says
// what each measures and why.
const (
	FHandshake = iota
	FPeerWire
	FExtension
	FDHT
	FUTP
	FTracker
	FLSD
	FClientID
	FPredicted
	FMSEShape
	FMSEHandshake
	FKnownProto
	FTextFirst
	FSymmetry
	FSizeMix
	FHighPorts
	FDepth
	FUnanswered
	FFramed
	FHostFanout // first host feature
	FHostPPR
	FHostBTPeers
	FHostMSEPeers
	FHostDiscovery
	FHostTCPUDP
	FHostNewFlows
	FHostSymmetry
	NumFeatures
)

// FirstHostFeature is the index of the first host feature.
const FirstHostFeature = FHostFanout

// FeatureName names feature i in reasons and in the weights file.
func FeatureName(i int) string { return featureNames[i] }

var featureNames = [NumFeatures]string{
	"handshake", "peer_wire", "extension", "dht_krpc", "utp", "tracker", "lsd", "client_id",
	"predicted_peer", "mse_shape", "mse_handshake", "known_protocol", "text_first", "symmetry", "size_mix",
	"high_ports", "depth", "unanswered_syn", "framed",
	"host_fanout", "host_port_peer_ratio", "host_bt_peers", "host_mse_peers", "host_discovery",
	"host_tcp_udp_peers", "host_new_flows", "host_symmetry",
}

// Sign is feature i's direction, fixed by design (+1: evidence for P2P,
// -1: against, 0: either); the trainer fits only the magnitude. Without it,
// a fit on a few swarms learns confounds, such as long or symmetric normal
// flows making symmetry count against P2P.
func Sign(i int) int8 { return signs[i] }

var signs = [NumFeatures]int8{
	FHandshake: 1, FPeerWire: 1, FExtension: 1, FDHT: 1, FUTP: 1, FTracker: 1, FLSD: 1, FClientID: 1,
	FPredicted: 1, FMSEShape: 1, FMSEHandshake: 1, FKnownProto: -1, FTextFirst: -1, FSymmetry: 1,
	FSizeMix: 1, FHighPorts: 1, FDepth: 1, FUnanswered: -1, FFramed: -1,
	FHostFanout: 1, FHostPPR: 1, FHostBTPeers: 1, FHostMSEPeers: 1, FHostDiscovery: 1,
	FHostTCPUDP: 1, FHostNewFlows: 0, FHostSymmetry: 1,
}

// Feature families. Encrypted evidence needs two of them (Gate).
const (
	famSignature = iota // plaintext BitTorrent structure or a predicted peer
	famShape            // MSE key-exchange shape, peer wire framing
	famFlow             // sizes, direction, ports, lifetime
	famHost             // the hosts' behaviour
	numFamilies
)

var family = [NumFeatures]uint8{
	FHandshake: famSignature, FPeerWire: famShape, FExtension: famSignature, FDHT: famSignature,
	FUTP: famSignature, FTracker: famSignature, FLSD: famSignature, FClientID: famSignature,
	FPredicted: famSignature, FMSEShape: famShape, FMSEHandshake: famShape, FKnownProto: famFlow, FTextFirst: famFlow,
	FSymmetry: famFlow, FSizeMix: famFlow, FHighPorts: famFlow, FDepth: famFlow, FUnanswered: famFlow, FFramed: famShape,
	FHostFanout: famHost, FHostPPR: famHost, FHostBTPeers: famHost, FHostMSEPeers: famHost,
	FHostDiscovery: famHost, FHostTCPUDP: famHost, FHostNewFlows: famHost, FHostSymmetry: famHost,
}

// Vector is one feature vector.
type Vector [NumFeatures]float32

// HostFeatures are a host's context features as the host snapshot computes
// them (indexes FirstHostFeature.. of a Vector), plus its own score.
type HostFeatures struct {
	X     [NumFeatures - FirstHostFeature]float32
	Score float32 // the host part of the flow score: sum of host weights times X
}

// Model holds the fitted weights and the decision thresholds.
type Model struct {
	Bias    float64              `json:"bias"`
	Weights [NumFeatures]float64 `json:"-"`
	// Alpha blends flow and host evidence: S = Bias + Alpha*S_flow + (1-Alpha)*S_host.
	Alpha float64 `json:"alpha"`
	// THigh and TLow bound the hysteresis band: p2p at P >= THigh, normal at
	// P <= TLow once the flow is old enough, unknown between.
	THigh float64 `json:"t_high"`
	TLow  float64 `json:"t_low"`
	// Host label model: P_host = logistic(HostBias + sum HostWeights*x_host + HostP2PWeight*log1p(p2p flows)).
	HostBias      float64                                 `json:"host_bias"`
	HostWeights   [NumFeatures - FirstHostFeature]float64 `json:"-"`
	HostP2PWeight float64                                 `json:"host_p2p_weight"`
}

// FlowFeatures fills the flow part of v from f's evidence and statistics.
func FlowFeatures(f *FlowState, v *Vector) {
	ev := f.Evidence
	bit := func(mask uint32) float32 {
		if ev&mask != 0 {
			return 1
		}
		return 0
	}
	v[FHandshake] = bit(EvHandshake)
	v[FPeerWire] = bit(EvPeerWire)
	v[FExtension] = bit(EvExtension)
	v[FDHT] = bit(EvDHT)
	v[FUTP] = bit(EvUTP)
	v[FTracker] = bit(EvUDPTracker | EvHTTPTracker)
	v[FLSD] = bit(EvLSD)
	v[FClientID] = bit(EvPeerID | EvBTAgent)
	v[FPredicted] = bit(EvPredicted)
	v[FMSEShape] = MSEShape(f)
	v[FMSEHandshake] = MSEHandshake(f)
	v[FKnownProto] = bit(evNormal)
	v[FTextFirst] = bit(EvTextFirst | EvServerFirst)
	up, down := float64(f.Bytes[0]), float64(f.Bytes[1])
	v[FSymmetry] = float32(math.Min(up, down) / (math.Max(up, down) + 1))
	if n := f.Payloads(); n >= 4 {
		small := float32(f.Small[0]) + float32(f.Small[1])
		large := float32(f.Large[0]) + float32(f.Large[1])
		v[FSizeMix] = min(1, (small+large)/float32(n))
	} else {
		v[FSizeMix] = 0
	}
	if f.More&MoreHighPorts != 0 {
		v[FHighPorts] = 1
	} else {
		v[FHighPorts] = 0
	}
	v[FFramed] = bit(EvFramed)
	v[FDepth] = float32(min(1, math.Log1p(float64(f.Payloads()))/math.Log1p(64)))
	// Seed 002: failed connections to predicted peers are P2P; only those to
	// peers nobody announced look like scanning.
	if f.TCP() && f.Flags&FlagSyn != 0 && f.Flags&FlagSynAck == 0 && f.Payloads() == 0 && ev&EvPredicted == 0 {
		v[FUnanswered] = 1
	} else {
		v[FUnanswered] = 0
	}
}

// MSE/PE (BEP 8 draft) key exchange bounds: Ya or Yb (96 bytes) plus 0..512 bytes of padding.
const (
	mseMin = 96
	mseMax = 96 + 512
)

// MSEShape scores the first exchange of a TCP flow against MSE/PE: the
// initiator's first turn 96..608 bytes with no plaintext structure, the
// responder's 96..608 bytes, strict turn-taking, and then a short initiator
// turn (the hashes, VC and crypto_provide: at least 28 bytes) before data.
// It is 0 until the responder has answered, so one packet never scores.
func MSEShape(f *FlowState) float32 {
	if !f.TCP() || f.Evidence&(evNormal|EvTextFirst|EvServerFirst|EvHandshake|EvFramed) != 0 || f.Turns < 2 {
		return 0
	}
	t1, t2 := int(f.Turn[0]), int(f.Turn[1])
	if t1 < mseMin || t1 > mseMax || t2 < mseMin || t2 > mseMax {
		return 0
	}
	if f.Turns < 3 {
		return 0.5
	}
	if int(f.Turn[2]) < mseReqMin {
		return 0.5
	}
	return 1
}

// Sizes of MSE's third and fourth messages (BEP 8 draft, "Message Stream
// Encryption"): the initiator sends HASH('req1',S) (20), HASH('req2',SKEY)
// xor HASH('req3',S) (20), ENCRYPT(VC 8, crypto_provide 4, len(PadC) 2, PadC,
// len(IA) 2) and ENCRYPT(IA); the responder ENCRYPT(VC 8, crypto_select 4,
// len(PadD) 2, PadD) and then its stream. With the BitTorrent handshake (68
// bytes) as IA and empty pads, as clients send it, those are 124 and 14+68.
const (
	mseReqMin     = 20 + 20 + 16 // third message without IA
	mseReqWithHS  = mseReqMin + HandshakeLen
	mseRespWithHS = 14 + HandshakeLen
)

// MSEHandshake is 1 when the third and fourth turns have the exact sizes of
// MSE carrying the BitTorrent handshake (124, then 82; one of them may carry
// extra bytes coalesced after it), on a flow whose first turns are MSE-shaped.
func MSEHandshake(f *FlowState) float32 {
	if MSEShape(f) != 1 || f.Turns < 4 {
		return 0
	}
	t3, t4 := int(f.Turn[2]), int(f.Turn[3])
	if t3 == mseReqWithHS && t4 >= mseRespWithHS || t3 >= mseReqWithHS && t4 == mseRespWithHS {
		return 1
	}
	return 0
}

// MSEExchanged reports whether f went through the whole MSE/PE exchange:
// the MSE shape (both key-exchange turns and the initiator's third
// message) and then the responder's fourth message (VC, crypto_select,
// len(PadD): at least 14 bytes). Two random-looking turns of the right
// sizes happen in other encrypted protocols; the answer to the third
// message is MSE's own dynamics. Only such flows count as MSE peers of a host.
func MSEExchanged(f *FlowState) bool {
	return MSEShape(f) == 1 && f.Turns >= 4 && f.Turn[3] >= mseRespMin
}

// mseRespMin is the responder's fourth MSE message without PadD.
const mseRespMin = 14

// EncryptedP2PShape reports whether f looks like encrypted BitTorrent: an
// MSE-shaped first exchange, both ports high, no known protocol. Such a flow
// is not made final normal while its hosts are not calm (see shard's decide).
func EncryptedP2PShape(f *FlowState) bool {
	return f.More&MoreHighPorts != 0 && f.Evidence&evNormal == 0 && MSEShape(f) > 0
}

// KnownProtocol reports whether f carries a recognised non-P2P protocol.
func KnownProtocol(f *FlowState) bool { return f.Evidence&evNormal != 0 }

// Features fills v with f's flow features and the host features h.
func Features(f *FlowState, h *HostFeatures, v *Vector) {
	FlowFeatures(f, v)
	copy(v[FirstHostFeature:], h.X[:])
}

// HostScore is the host part of the flow score for host features x.
func (m *Model) HostScore(x *[NumFeatures - FirstHostFeature]float32) float32 {
	s := 0.0
	for i, xi := range x {
		s += m.Weights[FirstHostFeature+i] * float64(xi)
	}
	return float32(s)
}

// Score returns P(p2p) for f given the host context h, after the gate.
func (m *Model) Score(f *FlowState, h *HostFeatures) float64 {
	var v Vector
	FlowFeatures(f, &v)
	sFlow := 0.0
	for i := 0; i < FirstHostFeature; i++ {
		sFlow += m.Weights[i] * float64(v[i])
	}
	s := m.Bias + m.Alpha*sFlow + (1-m.Alpha)*float64(h.Score)
	return m.gate(f, &v, h, logistic(s))
}

// Gate caps the probability at the top of the unknown band where the
// evidence is not allowed to decide p2p:
//   - no plaintext BitTorrent signature and a known non-P2P protocol (TLS,
//     SSH, DNS, QUIC, STUN, plain HTTP): host context alone never makes it p2p;
//   - no signature and fewer than two payload packets: one packet never decides;
//   - no signature and fewer than two feature families contributing;
//   - no signature and no payload evidence of the flow's own (MSE exchange,
//     peer wire framing, a client id): host context and flow behaviour (ports,
//     sizes) describe many normal flows of a P2P host too, so they never
//     make a flow p2p alone.
//
// A predicted peer is a signature only for a host that already has an
// answered BitTorrent peer flow (host_bt_peers): a tracker, DHT or PEX
// answer can be forged, and a forged one naming a normal server must not
// get a normal host's flows to it dropped (stress spoof). A real client's
// first peer flows carry their own evidence (MSE, a handshake); from its
// first answered one on, its predicted peers are decided at the SYN.
func (m *Model) gate(f *FlowState, v *Vector, h *HostFeatures, p float64) float64 {
	if p < m.THigh {
		return p
	}
	if f.Evidence&(evPlainBT&^EvPredicted) != 0 || f.Evidence&EvPredicted != 0 && h.X[FHostBTPeers-FirstHostFeature] > 0 {
		return p
	}
	capP := math.Nextafter(m.THigh, 0)
	if f.Evidence&evNormal != 0 || f.Payloads() < 2 || f.PayloadPkts[0] == 0 || f.PayloadPkts[1] == 0 {
		return capP
	}
	var fam [numFamilies]float64
	for i := 0; i < FirstHostFeature; i++ {
		fam[family[i]] += m.Alpha * m.Weights[i] * float64(v[i])
	}
	fam[famHost] = (1 - m.Alpha) * float64(h.Score)
	n := 0
	for _, c := range fam {
		if c >= familyMin {
			n++
		}
	}
	if n < 2 || fam[famSignature] < familyMin && fam[famShape] < familyMin {
		return capP
	}
	return p
}

// familyMin is the score a family must add to count as independent evidence.
const familyMin = 0.5

func logistic(s float64) float64 { return 1 / (1 + math.Exp(-s)) }

// Reason is one feature's part in a decision.
type Reason struct {
	Feature      string  `json:"feature"`
	Value        float64 `json:"value"`
	Contribution float64 `json:"contribution"`
}

// MaxReasons bounds the reasons a record carries.
const MaxReasons = 8

// Reasons lists the features that moved f's score, largest first. It
// allocates and is for decision records, not for the packet path.
func (m *Model) Reasons(f *FlowState, h *HostFeatures) []Reason {
	var v Vector
	Features(f, h, &v)
	out := make([]Reason, 0, NumFeatures)
	for i, x := range v {
		if x == 0 {
			continue
		}
		a := m.Alpha
		if i >= FirstHostFeature {
			a = 1 - m.Alpha
		}
		c := a * m.Weights[i] * float64(x)
		if math.Abs(c) < 0.01 {
			continue
		}
		out = append(out, Reason{Feature: featureNames[i], Value: round3(float64(x)), Contribution: round3(c)})
	}
	sort.SliceStable(out, func(i, j int) bool { return math.Abs(out[i].Contribution) > math.Abs(out[j].Contribution) })
	if len(out) > MaxReasons {
		out = out[:MaxReasons]
	}
	return out
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// PeerFlow reports whether f is a connection between two peers: peer wire,
// uTP, MSE or a predicted peer. Bans come only from peer flows: a tracker or
// a DHT node answered by a server is no peer to ban.
func PeerFlow(f *FlowState) bool {
	return f.Evidence&evPeer != 0 || MSEShape(f) > 0
}
