package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eddy-cdc/eddy/connect"
)

// Each malformed connector config fails `eddy validate` with exit 2 and
// exactly this message (FILE stands for the config's path).
func TestConnectorConfigErrors(t *testing.T) {
	const gen = "connectors:\n  - name: gen\n    plugin: datagen-source\n"
	const sink = "connectors:\n  - name: out\n    plugin: file-sink\n    topics: [a]\n"
	for _, c := range []struct{ yaml, want string }{
		{"connectors:\n  - plugin: datagen-source\n",
			"FILE:2: connectors[0].name: required"},
		{"connectors:\n  - name: \"a b\"\n    plugin: datagen-source\n",
			`FILE:2: connectors[0].name: "a b": names are letters, digits, '.', '_' and '-', up to 200`},
		{gen + "  - name: gen\n    plugin: datagen-source\n",
			`FILE:4: connectors[1].name: "gen" is already the name of connectors[0]`},
		{"connectors:\n  - name: gen\n",
			"FILE:2: connectors[0].plugin: required (sources: datagen-source, mysql-source, postgres-source; sinks: file-sink, mysql-sink, postgres-sink, s3-sink)"},
		{"connectors:\n  - name: gen\n    plugin: postgres\n",
			`FILE:3: connectors[0].plugin: "postgres" is not a known plugin (sources: datagen-source, mysql-source, postgres-source; sinks: file-sink, mysql-sink, postgres-sink, s3-sink)`},
		{"connectors:\n  - name: gen\n    plugin: unwrap\n",
			`FILE:3: connectors[0].plugin: "unwrap" is a transform, not a connector plugin (sources: datagen-source, mysql-source, postgres-source; sinks: file-sink, mysql-sink, postgres-sink, s3-sink)`},
		{gen + "    plugn: x\n",
			"FILE:4: plugn: unknown key"},
		{gen + "    config:\n      rat: 5\n",
			"FILE:5: connectors[0].config.rat: unknown parameter of datagen-source (it takes topic_prefix, tables, keys, rate, max_events, batch_size, payload_bytes, seed, format)"},
		{gen + "    config:\n      rate: fast\n",
			`FILE:5: connectors[0].config.rate: "fast" is not an integer`},
		{gen + "    config:\n      keys: 0\n",
			"FILE:5: connectors[0].config.keys: 0 is below the minimum 1"},
		{gen + "    config:\n      batch_size: 1000000\n",
			"FILE:5: connectors[0].config.batch_size: 1e+06 is above the maximum 100000"},
		{gen + "    config:\n      format: xml\n",
			`FILE:5: connectors[0].config.format: "xml" is not one of avro, json`},
		{gen + "    config:\n      tables: orders\n",
			"FILE:5: connectors[0].config.tables: must be a list such as [a, b]"},
		{"retention_protects: all\n", `FILE:1: retention_protects: "all" is not sinks or none`},
		{"retention_protect_bytes: -1\n", "FILE:1: retention_protect_bytes: -1 is negative (0 is no bound)"},
		{gen + "    config: [1, 2]\n",
			"FILE:4: connectors[0].config: must be a mapping of parameter: value"},
		{gen + "    topics: [a]\n",
			"FILE:4: connectors[0].topics: a source writes the topics its plugin names; topics is for sinks"},
		{"connectors:\n  - name: out\n    plugin: file-sink\n    config:\n      path: /tmp/x\n",
			"FILE:2: connectors[0].topics: required: the topics sink out consumes"},
		{"connectors:\n  - name: out\n    plugin: file-sink\n    topics: [a]\n",
			"FILE:2: connectors[0].config.path: required by file-sink"},
		{sink + "    config:\n      path: /tmp/x\n      fsync: sometimes\n",
			`FILE:7: connectors[0].config.fsync: "sometimes" is not true or false`},
		{"connectors:\n  - name: out\n    plugin: file-sink\n    topics: [\"bad topic\"]\n    config: {path: /tmp/x}\n",
			`FILE:4: connectors[0].topics[0]: invalid topic: topic name "bad topic" may hold only letters, digits, '.', '_' and '-'`},
		{gen + "    transforms:\n      - type: explode\n",
			`FILE:5: connectors[0].transforms[0].type: "explode" is not a transform (transforms: drop_fields, filter, insert_header, mask_fields, outbox, rename_fields, route, unwrap)`},
		{gen + "    transforms:\n      - regex: a\n",
			"FILE:5: connectors[0].transforms[0].type: required (transforms: drop_fields, filter, insert_header, mask_fields, outbox, rename_fields, route, unwrap)"},
		{gen + "    transforms:\n      - type: route\n        regex: a\n",
			"FILE:5: connectors[0].transforms[0].replacement: required by route"},
		{gen + "    transforms:\n      - type: route\n        regex: \"(\"\n        replacement: b\n",
			"FILE:5: connectors[0].transforms[0]: regex: error parsing regexp: missing closing ): `^(?:()$`"},
		{gen + "    transforms:\n      - type: unwrap\n        delete_handling: keep\n",
			`FILE:6: connectors[0].transforms[0].delete_handling: "keep" is not one of drop, tombstone, rewrite`},
		{gen + "    transforms:\n      - type: filter\n        action: keep\n",
			"FILE:5: connectors[0].transforms[0]: a filter needs tables, ops or a field"},
		{gen + "    transforms:\n      - type: filter\n        ops: [x]\n",
			`FILE:5: connectors[0].transforms[0]: ops: "x" is not one of c, u, d, r, t`},
		{gen + "    transforms:\n      - type: rename_fields\n        renames: [a]\n",
			"FILE:6: connectors[0].transforms[0].renames: must be a mapping such as {a: b}"},
		{gen + "    errors:\n      tolerance: some\n",
			`FILE:5: connectors[0].errors.tolerance: "some" is not none or all`},
		{gen + "    errors:\n      retry_timeout: long\n",
			`FILE:5: connectors[0].errors.retry_timeout: "long" is not a duration such as 30s or 5m`},
		{gen + "    errors:\n      dead_letter_topic: dlq\n",
			"FILE:5: connectors[0].errors.dead_letter_topic: records go to the dead-letter topic only under tolerance: all"},
		{gen + "    errors:\n      tolerence: all\n",
			"FILE:5: tolerence: unknown key"},
		{gen + "    schedule: \"every day\"\n",
			`FILE:4: connectors[0].schedule: "every day": expected exactly 5 fields, found 2: [every day]`},
		{"jobs:\n  - name: clean\n    plugin: log-clean\n",
			"FILE:2: jobs[0].schedule: required: a job runs on its cron schedule"},
		{"jobs:\n  - name: clean\n    plugin: datagen-source\n    schedule: \"@daily\"\n",
			`FILE:3: jobs[0].plugin: "datagen-source" is not a job plugin (jobs: log-archive, log-clean, outbox-clean)`},
		{"stores:\n  - {name: lake, type: s3}\n",
			"FILE:2: stores[0].bucket: required for a store of type s3"},
		{"stores:\n  - {name: lake, type: gcs, bucket: b}\n",
			`FILE:2: stores[0].type: "gcs" is not s3 or dir`},
		{"stores:\n  - {name: lake, type: dir, path: /tmp/a}\n  - {name: lake, type: dir, path: /tmp/b}\n",
			`FILE:3: stores[1].name: store "lake" is declared twice`},
		{"stores:\n  - {name: lake, type: s3, bucket: b, access_key_id: k}\n",
			"FILE:2: stores[0].access_key_id: access_key_id and secret_access_key go together (neither: the SDK's default chain)"},
		{"log:\n  archive:\n    store: nowhere\n",
			`FILE:3: log.archive.store: "nowhere" is not one of stores`},
		{"stores:\n  - {name: lake, type: dir, path: /tmp/a}\ntopics:\n  - name: t\n    archive:\n      store: lake\n      local_retention: lots\n",
			`FILE:7: topics[0].archive.local_retention: "lots" is neither a duration such as 24h nor a size such as 10GiB`},
		{"stores:\n  - {name: lake, type: dir, path: /tmp/a}\nlog:\n  archive: {store: lake, after: soon}\n",
			`FILE:4: log.archive.after: "soon" is not a duration such as 10m or 1h`},
		{"stores:\n  - {name: lake, type: dir, path: /tmp/a}\nlog:\n  archive: {store: lake, aftr: 1h}\n",
			"FILE:4: aftr: unknown key"},
		{"shutdown_timeout: soon\n",
			`FILE:1: shutdown_timeout: "soon" is not a duration such as 30s`},
		{"api:\n  users:\n    - name: dash\n      password: pw\n      role: write\n",
			`FILE:3: api.users[0].role: "write" is not one of admin, read`},
		{"registry:\n  users:\n    - name: app\n      password: pw\n      role: admin\n",
			`FILE:3: registry.users[0].role: "admin" is not one of read, write`},
		{"registry:\n  users:\n    - name: app\n      role: read\n",
			"FILE:3: registry.users[0]: user app needs a password (HTTP Basic) or a token (bearer), or both"},
		{"registry:\n  users:\n    - {name: app, password: a, role: read}\n    - {name: app, password: b, role: write}\n",
			`FILE:4: registry.users[1].name: "app" is taken ("token" is the listener's own token)`},
		{"registry:\n  token: t1\n  users:\n    - {name: app, token: t1, role: read}\n",
			"FILE:4: registry.users[0].token: user app has the token of another credential"},
		{"registry:\n  users:\n    - {password: a, role: read}\n",
			"FILE:3: registry.users[0].name: required"},
		{"registry:\n  tls_client_ca: /etc/hosts\n",
			"FILE:2: registry.tls_client_ca: client certificates need TLS: set tls_cert and tls_key too"},
		{"registry:\n  tls_cert: /nonexistent.pem\n  tls_key: /nonexistent.key\n",
			"FILE:2: registry.tls_cert: stat /nonexistent.pem: no such file or directory"},
		{"registry:\n  users:\n    - {name: app, password: \"${file:/nonexistent/secret}\", role: read}\n",
			"FILE:3: ${file:/nonexistent/secret}: open /nonexistent/secret: no such file or directory"},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "eddy.yaml")
		os.WriteFile(path, []byte(c.yaml+"data_dir: "+filepath.Join(dir, "data")+"\n"), 0o644)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var out, errb bytes.Buffer
		code := run(ctx, []string{"validate", "-c", path}, strings.NewReader(""), &out, &errb)
		cancel()
		want := "eddy: " + strings.ReplaceAll(c.want, "FILE", path) + "\n"
		if code != 2 || errb.String() != want {
			t.Errorf("config:\n%s\ngot exit %d, %q\nwant exit 2, %q", c.yaml, code, errb.String(), want)
		}
	}
}

// Every source and sink of the catalog has an implementation, and the
// reverse.
func TestCatalogMatchesImplementations(t *testing.T) {
	cat, err := connect.BuiltinCatalog()
	if err != nil {
		t.Fatal(err)
	}
	if err := builtinPlugins().Check(cat); err != nil {
		t.Fatal(err)
	}
}

// docs/plugins.md is what `eddy plugins --markdown` prints.
func TestPluginDocsAreCurrent(t *testing.T) {
	cat, err := connect.BuiltinCatalog()
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile("../../docs/plugins.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, cat.Markdown()) {
		t.Fatal("docs/plugins.md is stale: run `go run ./cmd/eddy plugins --markdown > docs/plugins.md`")
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"plugins", "--markdown"}, strings.NewReader(""), &out, &errb); code != 0 || !bytes.Equal(out.Bytes(), have) {
		t.Fatalf("eddy plugins --markdown: exit %d, %s", code, errb.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"plugins", "file-sink"}, strings.NewReader(""), &out, &errb); code != 0 || !strings.Contains(out.String(), "path") || !strings.Contains(out.String(), "required") {
		t.Fatalf("eddy plugins file-sink: exit %d, %s", code, out.String())
	}
	if code := run(context.Background(), []string{"plugins", "nope"}, strings.NewReader(""), &out, &errb); code != 2 {
		t.Fatalf("eddy plugins nope: exit %d", code)
	}
}

// The example eddy.yaml of the repository is valid, and a commented-out
// line may name an unset variable.
func TestExampleConfigValidates(t *testing.T) {
	var out, errb bytes.Buffer
	examples, _ := filepath.Glob("../../examples/*.yaml")
	nested, _ := filepath.Glob("../../examples/*/*.yaml")
	examples = append(examples, nested...)
	for _, f := range append(examples, "../../eddy.yaml") {
		if code := run(context.Background(), []string{"validate", "-c", f}, strings.NewReader(""), &out, &errb); code != 0 {
			t.Fatalf("%s: exit %d: %s", f, code, errb.String())
		}
	}
	// $${...} stays a literal ${...}.
	lit := filepath.Join(t.TempDir(), "eddy.yaml")
	os.WriteFile(lit, []byte("data_dir: /tmp/x\nconnectors:\n  - name: out\n    plugin: file-sink\n    topics: [a]\n    config: {path: \"/tmp/$${table}\"}\n"), 0o644)
	cfg, err := connect.LoadConfig(lit)
	if err != nil || cfg.Connectors[0].Params().String("path") != "/tmp/${table}" {
		t.Fatalf("$${table}: %v %v", err, cfg)
	}
	path := filepath.Join(t.TempDir(), "eddy.yaml")
	os.WriteFile(path, []byte("data_dir: /tmp/x\napi:\n  # token: ${EDDY_TEST_SURELY_UNSET}\n  listen: \"127.0.0.1:1\" # port ${EDDY_TEST_SURELY_UNSET}\n"), 0o644)
	if code := run(context.Background(), []string{"validate", "-c", path}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("commented variable: exit %d: %s", code, errb.String())
	}
}

// eddy connectors against a running server: list, status, pause, resume,
// restart, stop, offsets and their reset, with the token; errors exit 1.
func TestConnectorsCommand(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "eddy.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`data_dir: %s
api: {listen: %q, token: s3cret}
registry: {listen: "127.0.0.1:0"}
connectors:
  - name: gen
    plugin: datagen-source
    config: {rate: 500, tables: [orders], topic_prefix: c}
  - name: out
    plugin: file-sink
    topics: [c.public.orders]
    config: {path: %s}
`, filepath.Join(dir, "data"), addr, filepath.Join(dir, "out.jsonl"))), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var errb bytes.Buffer
	go func() { done <- run(ctx, []string{"run", "-c", cfg}, strings.NewReader(""), io.Discard, &errb) }()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("eddy run exited %d: %s", code, errb.String())
		}
	}()
	server := []string{"--server", "http://" + addr, "--token", "s3cret"}
	cli := func(args ...string) result {
		return eddy(t, "", append(append([]string{"connectors"}, args...), server...)...)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := cli("list")
		if r.code == 0 && strings.Contains(r.stdout, "gen") && strings.Contains(r.stdout, "RUNNING") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("list: %+v; server: %s", r, errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out := must(t, cli("status", "gen")); !strings.Contains(out, "Connector: gen (source)") || !strings.Contains(out, "State: RUNNING") {
		t.Fatalf("status: %s", out)
	}
	must(t, cli("pause", "gen"))
	for deadline = time.Now().Add(10 * time.Second); !strings.Contains(must(t, cli("status", "gen")), "Task 0: PAUSED"); {
		if time.Now().After(deadline) {
			t.Fatal("never PAUSED")
		}
		time.Sleep(20 * time.Millisecond)
	}
	must(t, cli("resume", "gen"))
	must(t, cli("restart", "out"))
	if r := cli("offsets", "gen", "--reset"); r.code != 1 || !strings.Contains(r.stderr, "must be stopped") {
		t.Fatalf("reset while running: %+v", r)
	}
	must(t, cli("stop", "gen"))
	if out := must(t, cli("offsets", "gen")); !strings.Contains(out, `"position"`) {
		t.Fatalf("offsets: %s", out)
	}
	must(t, cli("offsets", "gen", "--reset"))
	if out := must(t, cli("offsets", "gen")); !strings.Contains(out, `"offsets": []`) {
		t.Fatalf("offsets after reset: %s", out)
	}
	if out := must(t, cli("offsets", "out")); !strings.Contains(out, `"kafka_topic": "c.public.orders"`) {
		t.Fatalf("sink offsets: %s", out)
	}
	if r := cli("status", "nope"); r.code != 1 || !strings.Contains(r.stderr, "unknown connector") {
		t.Fatalf("unknown connector: %+v", r)
	}
	if r := eddy(t, "", "connectors", "list", "--server", "http://"+addr); r.code != 1 || !strings.Contains(r.stderr, "unauthorized") {
		t.Fatalf("no token: %+v", r)
	}
	if r := eddy(t, "", "connectors", "list", "--data-dir", dir); r.code != 2 {
		t.Fatalf("--data-dir: %+v", r)
	}
	if r := cli("delete", "out", "--release", "--keep"); r.code != 1 || !strings.Contains(r.stderr, "exclude each other") {
		t.Fatalf("delete --release --keep: %+v", r)
	}
	if out := must(t, cli("delete", "out")); !strings.Contains(out, "out: deleted") || !strings.Contains(out, "eddy.yaml") {
		t.Fatalf("delete: %s", out)
	}
	if out := must(t, cli("list")); strings.Contains(out, "out") {
		t.Fatalf("list after delete: %s", out)
	}
	if r := cli("delete", "out"); r.code != 1 || !strings.Contains(r.stderr, "unknown connector") {
		t.Fatalf("delete twice: %+v", r)
	}
	if strings.Contains(errb.String(), "s3cret") {
		t.Fatal("the token was logged")
	}
}
