package udevrule

import (
	"reflect"
	"strings"
	"testing"
)

func TestRules(t *testing.T) {
	body := `# comment
ACTION=="add", SUBSYSTEM=="block", \
  RUN+="/sbin/mdadm -I $devnode"
KERNEL=="sd*", IMPORT{program}="ata_id --export $devnode", ENV{SYSTEMD_WANTS}+="a.service b.service"
RUN{builtin}+="kmod load $env{MODALIAS}"
PROGRAM=="/bin/sh -c \"echo x\"", RUN{program}="/x"
ENV{X}="unterminated
`
	rules := Rules([]byte(body))
	if len(rules) != 5 {
		t.Fatalf("%d rules, want 5: %+v", len(rules), rules)
	}
	if r := rules[0]; r.Line != 2 || r.Lines != 2 || len(r.Keys) != 3 || r.Keys[2].Value != "/sbin/mdadm -I $devnode" || !r.Keys[2].Runs() {
		t.Errorf("continued rule: %+v", r)
	}
	if w := rules[1].Keys[2].Wants(); !reflect.DeepEqual(w, []string{"a.service", "b.service"}) {
		t.Errorf("Wants = %q", w)
	}
	if !rules[1].Keys[1].Runs() || rules[2].Keys[0].Runs() {
		t.Error("IMPORT{program} runs, RUN{builtin} does not")
	}
	if k := rules[3].Keys[0]; k.Value != `/bin/sh -c "echo x"` || !k.Runs() || !rules[3].Keys[1].Runs() {
		t.Errorf("escaped quotes: %+v", rules[3].Keys)
	}
	if rules[4].Err == nil || !strings.Contains(rules[4].Err.Error(), "not closed") {
		t.Errorf("unterminated value: %v", rules[4].Err)
	}
}

// FuzzRules: any file splits into rules without a panic, every rule's
// lines lie inside the file, and a key that parsed has a name and an
// operator.
func FuzzRules(f *testing.F) {
	f.Add([]byte("ACTION==\"add\", RUN+=\"/sbin/x $devnode\"\n"))
	f.Add([]byte("KERNEL==\"a\" \\\n, PROGRAM=\"b\"\\"))
	f.Add([]byte("ENV{A}=e\"\\\"x\"\n#\n\n{=\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := strings.Count(string(b), "\n") + 1
		for _, r := range Rules(b) {
			if r.Line < 1 || r.Lines < 1 || r.Line+r.Lines-1 > n {
				t.Fatalf("rule at %d+%d outside %d lines", r.Line, r.Lines, n)
			}
			for _, k := range r.Keys {
				if k.Name == "" || k.Op == "" {
					t.Fatalf("bad key %+v", k)
				}
				k.Runs()
				k.Wants()
			}
		}
	})
}
