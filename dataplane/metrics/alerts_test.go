package metrics

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// The shipped alert rules load in Prometheus and fire as their unit tests
// say (promtool, the real rule engine), and every metric they read is one
// swarmguard exports: a renamed metric would silence an alert.
func TestAlertRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("needs promtool (bench/deps.sh installs prometheus)")
	}
	for _, args := range [][]string{{"check", "rules", "prometheus-alerts.yml"}, {"test", "rules", "prometheus-alerts.test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "../../contrib"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	rules, err := os.ReadFile("../../contrib/prometheus-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var exported strings.Builder
	for _, f := range []string{"metrics.go", "../../cmd/swarmguard/service.go"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		exported.Write(b)
	}
	for _, name := range regexp.MustCompile(`swarmguard_[a-z_]+`).FindAllString(string(rules), -1) {
		short := strings.TrimPrefix(name, "swarmguard_")
		if !strings.Contains(exported.String(), `"`+name+`"`) && !strings.Contains(exported.String(), `desc("`+short+`"`) {
			t.Errorf("the rules read %s, which swarmguard does not export", name)
		}
	}
}
