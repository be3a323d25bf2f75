package connect_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/eddy-cdc/eddy/connect"
)

// ${file:PATH} puts a file's content into a value once the YAML is
// parsed: characters YAML would read as syntax stay in the string, digits
// stay a string, one trailing newline goes, and $${file:...} is literal.
func TestSecretsFromFiles(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "pw")
	os.WriteFile(secret, []byte(`p@ss: "w#rd' {x}, [y]`+"\n"), 0o600)
	digits := filepath.Join(dir, "digits")
	os.WriteFile(digits, []byte("0123\n"), 0o600)
	cfgPath := filepath.Join(dir, "eddy.yaml")
	os.WriteFile(cfgPath, []byte(`data_dir: `+filepath.Join(dir, "data")+`
registry:
  users:
    - name: app
      password: ${file:`+secret+`}
      role: write
    - {name: ro, password: "${file:`+digits+`}", role: read}
connectors:
  - name: out
    plugin: file-sink
    topics: [a]
    config:
      path: $${file:/literal}
`), 0o644)
	cfg, err := connect.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	creds := cfg.Registry.Credentials()
	if len(creds) != 2 || creds[0].Password != `p@ss: "w#rd' {x}, [y]` || creds[1].Password != "0123" {
		t.Fatalf("credentials from files: %q", []string{creds[0].Password, creds[1].Password})
	}
	if got := cfg.Connectors[0].Params().String("path"); got != "${file:/literal}" {
		t.Fatalf("$${file:...} gave %q", got)
	}
}
