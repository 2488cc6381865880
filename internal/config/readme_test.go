package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// readmeVarName is a variable name as the README's configuration table
// writes it.
var readmeVarName = regexp.MustCompile("`((?:GATEWAY|SENTRY|AWS)_[A-Z0-9_]+)`")

// derivedDefaults are variables whose README default is computed from
// another setting (the code's Default is empty and Load or serve fills it).
var derivedDefaults = map[string]bool{"GATEWAY_PUBLIC_URL": true, "SENTRY_ENVIRONMENT": true, "SENTRY_RELEASE": true}

// TestReadmeConfigurationTable pins the README's configuration table to
// Vars: every variable Load reads has a row, every row names only
// variables Load reads, and a default the table writes as a value (`x`, or
// – for none) is the one Load applies.
func TestReadmeConfigurationTable(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "\n## Configuration\n")
	if !ok {
		t.Fatal("README.md has no ## Configuration section")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	known := map[string]Var{}
	for _, v := range Vars() {
		known[v.Name] = v
	}
	seen := map[string]bool{}
	for line := range strings.SplitSeq(table, "\n") {
		cells := strings.Split(line, " | ")
		if !strings.HasPrefix(line, "| `") || len(cells) < 3 {
			continue
		}
		var names []string
		for _, m := range readmeVarName.FindAllStringSubmatch(cells[0], -1) {
			names = append(names, m[1])
		}
		for _, n := range names {
			if _, ok := known[n]; !ok {
				t.Errorf("README's configuration table lists %s, which config.Load does not read", n)
			}
			seen[n] = true
		}
		defaults := []string{cells[1]}
		if len(names) > 1 {
			defaults = strings.Split(cells[1], ", ")
			if len(defaults) != len(names) {
				continue // one default for several variables ("Google's")
			}
		}
		for i, n := range names {
			v, ok := known[n]
			if !ok || derivedDefaults[n] {
				continue
			}
			d := strings.TrimSpace(defaults[i])
			switch {
			case strings.HasPrefix(d, "–"):
				if v.Default != "" {
					t.Errorf("README: %s has no default, config.Vars says %q", n, v.Default)
				}
			case strings.HasPrefix(d, "`"):
				want, _, _ := strings.Cut(d[1:], "`")
				if v.Default != want {
					t.Errorf("README: %s defaults to %q, config.Vars says %q", n, want, v.Default)
				}
			}
		}
	}
	for _, v := range Vars() {
		if !seen[v.Name] {
			t.Errorf("%s is read by config.Load but missing from README's configuration table", v.Name)
		}
	}
}
