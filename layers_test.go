package eddy

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/eddy-cdc/eddy"

// layerRules say what each layer of Eddy may import of Eddy's own
// packages, lowest first. Leaf packages (internal ones importing nothing
// of Eddy's, such as internal/access) are open to every layer but the log.
var layerRules = []struct {
	pkg     string // a package, or a prefix ending in "/"
	allowed func(dep string) bool
	why     string
}{
	{"log", func(string) bool { return false }, "the log stands alone, imports nothing of Eddy's"},
	{"registry", func(dep string) bool { return dep == "log" }, "the registry is built on the log alone"},
	{"connect", func(dep string) bool { return !strings.HasPrefix(dep, "sources/") && !strings.HasPrefix(dep, "sinks/") },
		"the runtime knows plugins only through its interfaces"},
	{"admin", func(dep string) bool { return !strings.HasPrefix(dep, "sources/") && !strings.HasPrefix(dep, "sinks/") },
		"the admin API knows plugins only through the runtime"},
	{"sources/", func(dep string) bool { return !strings.HasPrefix(dep, "sinks/") && !strings.HasPrefix(dep, "sources/") },
		"a source depends on no sink and no other source"},
	{"sinks/", func(dep string) bool { return !strings.HasPrefix(dep, "sources/") && !strings.HasPrefix(dep, "sinks/") },
		"a sink depends on no source and no other sink"},
	{"outbox", func(string) bool { return false },
		"the library applications import brings nothing of Eddy's runtime with it"},
	{"outbox/router", func(dep string) bool { return !strings.HasPrefix(dep, "sources/") && !strings.HasPrefix(dep, "sinks/") },
		"the router is a transform: it knows sources only through the runtime"},
	{"outbox/clean", func(dep string) bool { return !strings.HasPrefix(dep, "sinks/") },
		"the cleanup job reads the positions of the sources it cleans behind, and knows no sink"},
}

type listed struct {
	ImportPath string
	Deps       []string
}

// eddyDeps lists, per package of the module (tests aside), the module's
// packages it depends on, directly or not, relative to the module.
func eddyDeps(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "./...")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, stderr.String())
	}
	pkgs := map[string][]string{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p listed
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		for _, d := range p.Deps {
			if d == module || strings.HasPrefix(d, module+"/") {
				pkgs[rel] = append(pkgs[rel], strings.TrimPrefix(strings.TrimPrefix(d, module), "/"))
			}
		}
		if _, ok := pkgs[rel]; !ok {
			pkgs[rel] = nil
		}
	}
	return pkgs
}

// Imports follow the layers: a rule broken names the package, the import
// and the rule.
func TestLayering(t *testing.T) {
	if err := checkLayers(eddyDeps(t)); err != nil {
		t.Fatal(err)
	}
}

func checkLayers(pkgs map[string][]string) error {
	leaf := map[string]bool{}
	for p, deps := range pkgs {
		leaf[p] = len(deps) == 0 && strings.HasPrefix(p, "internal/")
	}
	var broken []string
	for p, deps := range pkgs {
		for _, r := range layerRules {
			if p != r.pkg && !(strings.HasSuffix(r.pkg, "/") && strings.HasPrefix(p, r.pkg)) {
				continue
			}
			for _, d := range deps {
				if (!leaf[d] || r.pkg == "log") && !r.allowed(d) {
					broken = append(broken, fmt.Sprintf("%s imports %s: %s", p, d, r.why))
				}
			}
		}
	}
	if len(broken) > 0 {
		return fmt.Errorf("layering broken:\n%s", strings.Join(broken, "\n"))
	}
	return nil
}

// The check itself catches an import against the rules.
func TestLayeringCatches(t *testing.T) {
	pkgs := eddyDeps(t)
	for pkg, bad := range map[string]string{"log": "internal/access", "registry": "connect", "connect": "sinks/sql", "sources/postgres": "sinks/file", "sinks/sql": "sources/datagen", "outbox": "connect"} {
		bent := map[string][]string{}
		for k, v := range pkgs {
			bent[k] = v
		}
		bent[pkg] = append(append([]string(nil), pkgs[pkg]...), bad)
		if err := checkLayers(bent); err == nil || !strings.Contains(err.Error(), pkg+" imports "+bad) {
			t.Errorf("%s importing %s went unnoticed: %v", pkg, bad, err)
		}
	}
}
