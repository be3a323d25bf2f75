package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eddy-cdc/eddy/internal/logbuf"
)

// Secrets planted in every place a config takes one (DSNs of three
// shapes, one of them malformed, the API token, a registry password, a
// masking salt; from the file, the environment and ${file:...}) never show
// in `eddy validate`, the server's log, connector statuses and configs,
// the CLI's output or /metrics, while every connector fails to reach its
// database and says why.
func TestSecretsNeverShow(t *testing.T) {
	dir := t.TempDir()
	secrets := map[string]string{
		"postgres URL password":  "pgUrlPw-S3cr3t",
		"malformed URL password": "pgBadPw-S3cr3t",
		"key=value password":     "kvPw-S3cr3t",
		"MySQL password":         "myPw-S3cr3t",
		"API token":              "apiTok-S3cr3t",
		"registry password":      "regPw-S3cr3t",
		"masking salt":           "salt-S3cr3t",
	}
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(secrets["API token"]+"\n"), 0o600)
	t.Setenv("EDDY_TEST_REG_PW", secrets["registry password"])
	t.Setenv("EDDY_TEST_MY_DSN", "mysql://eddy:"+secrets["MySQL password"]+"@127.0.0.1:1/shop")
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "eddy.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`data_dir: %s
api: {listen: %q, token: "${file:%s}"}
registry:
  listen: %q
  users:
    - {name: app, password: "${EDDY_TEST_REG_PW}", role: write}
connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: "postgres://eddy:%s@127.0.0.1:1/shop?sslmode=disable", tables: [orders], topic_prefix: shop}
    transforms:
      - {type: mask_fields, fields: [email], salt: %s}
  - name: badurl
    plugin: postgres-source
    config: {dsn: "postgres://eddy:%s@127.0.0.1:notaport/shop", tables: [orders], topic_prefix: bad}
  - name: kv
    plugin: postgres-sink
    topics: [shop.public.orders]
    config: {dsn: "host=127.0.0.1 port=1 user=eddy password=%s dbname=shop"}
  - name: my
    plugin: mysql-sink
    topics: [shop.public.orders]
    config: {dsn: "${EDDY_TEST_MY_DSN}"}
`, filepath.Join(dir, "data"), addr, tokenFile, freeAddr(t), secrets["postgres URL password"], secrets["masking salt"],
		secrets["malformed URL password"], secrets["key=value password"])), 0o644)

	var shown []string // every text a user sees
	r := eddy(t, "", "validate", "-c", cfg)
	shown = append(shown, "eddy validate: "+r.stdout+r.stderr)
	if r.code != 0 {
		t.Fatalf("validate: %+v", r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var logs logbuf.Buffer
	go func() { done <- run(ctx, []string{"run", "-c", cfg}, strings.NewReader(""), io.Discard, &logs) }()
	server := []string{"--server", "http://" + addr, "--token", secrets["API token"]}
	cli := func(args ...string) string {
		r := eddy(t, "", append(args, server...)...)
		return r.stdout + r.stderr
	}
	// Every connector has met its unreachable database and says so.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out := cli("connectors", "list")
		errors := 0
		for _, name := range []string{"pg", "badurl", "kv", "my"} {
			st := cli("connectors", "status", name)
			if strings.Count(st, "\n") > 3 { // the task's error under its state
				errors++
			}
		}
		if errors == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every connector reported its error: %s", out)
		}
	}
	for _, name := range []string{"pg", "badurl", "kv", "my"} {
		shown = append(shown, "eddy connectors status "+name+": "+cli("connectors", "status", name))
	}
	shown = append(shown, "eddy connectors list: "+cli("connectors", "list"))
	for _, path := range []string{"/connectors?expand=status&expand=info", "/connectors/pg/config", "/connectors/kv", "/connectors/my/status", "/metrics"} {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		req.Header.Set("Authorization", "Bearer "+secrets["API token"])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		shown = append(shown, "GET "+path+": "+string(b))
	}
	cancel()
	<-done
	shown = append(shown, "server log: "+logs.String())
	all := strings.Join(shown, "\n")
	for what, s := range secrets {
		for _, text := range shown {
			if strings.Contains(text, s) {
				i := strings.Index(text, s)
				t.Errorf("the %s shows in %s", what, text[:min(len(text), max(0, i-200)+400)])
			}
		}
	}
	if !strings.Contains(all, "127.0.0.1:1") && !strings.Contains(all, "connect") {
		t.Fatalf("the connectors never said why they failed:\n%s", all)
	}
}
