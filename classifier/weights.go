package classifier

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
)

// defaultWeights is written by `swarmguard bench train` (bench/train); do not
// edit it by hand: retrain.
//
//go:embed weights.json
var defaultWeights []byte

// weightsFile is the on-disk form of a Model: weights by feature name, so a
// file stays readable and survives a reordering of the features.
type weightsFile struct {
	Comment       string             `json:"comment,omitempty"`
	Bias          float64            `json:"bias"`
	Alpha         float64            `json:"alpha"`
	THigh         float64            `json:"t_high"`
	TLow          float64            `json:"t_low"`
	Weights       map[string]float64 `json:"weights"`
	HostBias      float64            `json:"host_bias"`
	HostWeights   map[string]float64 `json:"host_weights"`
	HostP2PWeight float64            `json:"host_p2p_weight"`
	Training      json.RawMessage    `json:"training,omitempty"`
}

// DefaultModel returns the embedded, fitted model.
func DefaultModel() *Model {
	m, err := ParseModel(defaultWeights)
	if err != nil {
		panic(fmt.Sprintf("embedded weights.json: %v", err)) // a build defect, caught by tests
	}
	return m
}

// ParseModel reads a weights file.
func ParseModel(b []byte) (*Model, error) {
	var wf weightsFile
	if err := json.Unmarshal(b, &wf); err != nil {
		return nil, fmt.Errorf("parse weights: %w", err)
	}
	m := &Model{Bias: wf.Bias, Alpha: wf.Alpha, THigh: wf.THigh, TLow: wf.TLow, HostBias: wf.HostBias, HostP2PWeight: wf.HostP2PWeight}
	for name, w := range wf.Weights {
		i := featureIndex(name)
		if i < 0 {
			return nil, fmt.Errorf("parse weights: unknown feature %q", name)
		}
		m.Weights[i] = w
	}
	for name, w := range wf.HostWeights {
		i := featureIndex(name)
		if i < FirstHostFeature {
			return nil, fmt.Errorf("parse weights: %q is not a host feature", name)
		}
		m.HostWeights[i-FirstHostFeature] = w
	}
	if !(m.TLow > 0 && m.TLow < m.THigh && m.THigh < 1) || !(m.Alpha >= 0 && m.Alpha <= 1) {
		return nil, fmt.Errorf("parse weights: need 0 < t_low < t_high < 1 and 0 <= alpha <= 1")
	}
	return m, nil
}

// Marshal writes m as a weights file; training is stored as is.
func (m *Model) Marshal(comment string, training any) ([]byte, error) {
	wf := weightsFile{Comment: comment, Bias: r6(m.Bias), Alpha: m.Alpha, THigh: m.THigh, TLow: m.TLow,
		HostBias: r6(m.HostBias), HostP2PWeight: r6(m.HostP2PWeight),
		Weights: map[string]float64{}, HostWeights: map[string]float64{}}
	for i, w := range m.Weights {
		wf.Weights[featureNames[i]] = r6(w)
	}
	for i, w := range m.HostWeights {
		wf.HostWeights[featureNames[FirstHostFeature+i]] = r6(w)
	}
	if training != nil {
		b, err := json.Marshal(training)
		if err != nil {
			return nil, err
		}
		wf.Training = b
	}
	return json.MarshalIndent(wf, "", "  ")
}

func r6(x float64) float64 { return math.Round(x*1e6) / 1e6 }

func featureIndex(name string) int {
	for i, n := range featureNames {
		if n == name {
			return i
		}
	}
	return -1
}
