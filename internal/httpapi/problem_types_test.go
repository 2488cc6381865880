package httpapi_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every problem type the package can answer is in the spec's list of
// problem types, so a client can rely on the list.
func TestProblemTypesAreDocumented(t *testing.T) {
	t.Parallel()
	spec, err := os.ReadFile(filepath.Join("..", "..", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, list, ok := strings.Cut(string(spec), "Problem types (all under `https://spotlight.dev/problems/`):")
	if !ok {
		t.Fatal("openapi.yaml has no list of problem types")
	}
	list, _, _ = strings.Cut(list, "\n\n")
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	// Slugs appear as Slug: "x" in Error literals and as the first result
	// of statusSlug ("x", "Title").
	slug := regexp.MustCompile(`Slug: *"([a-z-]+)"|return "([a-z-]+)", "[A-Z]`)
	seen := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || strings.HasSuffix(f, ".gen.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range slug.FindAllStringSubmatch(string(src), -1) {
			s := m[1] + m[2]
			seen++
			if !strings.Contains(list, "`"+s+"`") {
				t.Errorf("%s: problem type %q is not in openapi.yaml's list of problem types", f, s)
			}
		}
	}
	if seen < 10 {
		t.Fatalf("found only %d problem types in the sources: the pattern no longer matches them", seen)
	}
}
