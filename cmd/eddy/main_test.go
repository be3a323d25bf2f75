package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/eddy-cdc/eddy/admin"
	"github.com/eddy-cdc/eddy/connect"
	elog "github.com/eddy-cdc/eddy/log"
	"github.com/eddy-cdc/eddy/registry"
)

type result struct {
	code           int
	stdout, stderr string
}

func eddy(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

func must(t *testing.T, r result) string {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	return r.stdout
}

// target is where commands point: a data directory, or a running server.
type target struct {
	name  string
	flags func(t *testing.T) []string
}

func targets() []target {
	return []target{
		{"data-dir", func(t *testing.T) []string { return []string{"--data-dir", t.TempDir()} }},
		{"server", func(t *testing.T) []string {
			l, err := elog.Open(t.TempDir(), elog.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(admin.NewServer(admin.NewLocal(l), slog.New(slog.NewTextHandler(io.Discard, nil))))
			t.Cleanup(func() { srv.Close(); l.Close() })
			return []string{"--server", srv.URL}
		}},
	}
}

func TestTopicsProduceConsume(t *testing.T) {
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			f := tg.flags(t)
			args := func(a ...string) []string { return append(a, f...) }
			out := must(t, eddy(t, "", args("topics", "create", "orders", "--partitions", "3", "--retention", "72h")...))
			if !strings.Contains(out, "created topic orders with 3 partitions") {
				t.Fatalf("create said %q", out)
			}
			r := eddy(t, "", args("topics", "create", "orders")...)
			if r.code != 1 || !strings.Contains(r.stderr, "already exists") || strings.Count(r.stderr, "\n") != 1 {
				t.Fatalf("duplicate create: %+v", r)
			}
			var in strings.Builder
			for i := 0; i < 300; i++ {
				fmt.Fprintf(&in, "k%d|value %d\n", i%7, i)
			}
			r = eddy(t, in.String(), args("produce", "orders", "--key-separator", "|")...)
			if r.code != 0 || !strings.Contains(r.stderr, "produced 300 records") {
				t.Fatalf("produce: %+v", r)
			}
			list := must(t, eddy(t, "", args("topics", "list")...))
			if !strings.Contains(list, "orders") || !strings.Contains(list, "300") {
				t.Fatalf("list: %s", list)
			}
			desc := must(t, eddy(t, "", args("topics", "describe", "orders")...))
			if !strings.Contains(desc, "Retention: 72h0m0s") || !strings.Contains(desc, "Partitions: 3") {
				t.Fatalf("describe: %s", desc)
			}
			lines := strings.Split(strings.TrimSpace(must(t, eddy(t, "", args("consume", "orders")...))), "\n")
			if len(lines) != 300 {
				t.Fatalf("consumed %d lines", len(lines))
			}
			perKey := map[string][]int{}
			for _, line := range lines {
				var rec admin.RecordJSON
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatalf("line %q: %v", line, err)
				}
				var n int
				fmt.Sscanf(*rec.Value, "value %d", &n)
				if want := elog.PartitionForKey([]byte(*rec.Key), 3); rec.Partition != want {
					t.Fatalf("key %s in partition %d, want %d", *rec.Key, rec.Partition, want)
				}
				perKey[*rec.Key] = append(perKey[*rec.Key], n)
			}
			for k, ns := range perKey {
				for i := 1; i < len(ns); i++ {
					if ns[i] <= ns[i-1] {
						t.Fatalf("key %s out of order: %v", k, ns)
					}
				}
			}
			// --max, --format value, --partition, --from offset.
			vals := must(t, eddy(t, "", args("consume", "orders", "--partition", "0", "--from", "offset:2", "--max", "3", "--format", "value")...))
			if n := strings.Count(vals, "\n"); n != 3 || strings.Contains(vals, "{") {
				t.Fatalf("value format with max 3: %q", vals)
			}
			must(t, eddy(t, "", args("topics", "delete", "orders")...))
			r = eddy(t, "", args("consume", "orders")...)
			if r.code != 1 || !strings.Contains(r.stderr, "unknown topic") {
				t.Fatalf("consume of a deleted topic: %+v", r)
			}
		})
	}
}

func TestGroupsCommitLagAndReset(t *testing.T) {
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			f := tg.flags(t)
			args := func(a ...string) []string { return append(a, f...) }
			must(t, eddy(t, "", args("topics", "create", "events", "--partitions", "2")...))
			var in strings.Builder
			for i := 0; i < 50; i++ {
				fmt.Fprintf(&in, "key-%d x\n", i)
			}
			must(t, eddy(t, in.String(), args("produce", "events", "--key-separator", " ")...))
			first := must(t, eddy(t, "", args("consume", "events", "--group", "g", "--max", "20")...))
			if n := strings.Count(first, "\n"); n != 20 {
				t.Fatalf("first read %d records", n)
			}
			// The group resumes after what it printed.
			rest := must(t, eddy(t, "", args("consume", "events", "--group", "g")...))
			if n := strings.Count(rest, "\n"); n != 30 {
				t.Fatalf("second read %d records, want the other 30", n)
			}
			desc := must(t, eddy(t, "", args("groups", "describe", "g")...))
			if !strings.Contains(desc, "State: Empty") || strings.Count(desc, "events") != 2 {
				t.Fatalf("describe: %s", desc)
			}
			for _, line := range strings.Split(desc, "\n") {
				if strings.HasPrefix(line, "events") && !strings.HasSuffix(strings.TrimSpace(line), " 0") {
					t.Fatalf("lag not 0 after reading everything: %q", line)
				}
			}
			must(t, eddy(t, "x\nx\n", args("produce", "events")...))
			if list := must(t, eddy(t, "", args("groups", "list")...)); strings.TrimSpace(list) != "g" {
				t.Fatalf("groups list: %q", list)
			}
			out := must(t, eddy(t, "", args("groups", "reset", "g", "--topic", "events", "--to", "earliest")...))
			if !strings.Contains(out, "events/0\t0") || !strings.Contains(out, "events/1\t0") {
				t.Fatalf("reset: %s", out)
			}
			again := must(t, eddy(t, "", args("consume", "events", "--group", "g")...))
			if n := strings.Count(again, "\n"); n != 52 {
				t.Fatalf("after reset read %d records, want 52", n)
			}
			r := eddy(t, "", args("groups", "reset", "g", "--topic", "events", "--to", "sometime")...)
			if r.code != 2 {
				t.Fatalf("bad --to: %+v", r)
			}
		})
	}
}

func TestFollowWaitsForNewRecords(t *testing.T) {
	dir := t.TempDir()
	l, err := elog.Open(dir, elog.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tp, _ := l.CreateTopic("live", elog.TopicConfig{})
	srv := httptest.NewServer(admin.NewServer(admin.NewLocal(l), slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer srv.Close()
	go func() {
		time.Sleep(300 * time.Millisecond)
		for i := 0; i < 5; i++ {
			tp.Produce(context.Background(), []elog.Record{{Value: []byte(fmt.Sprint("late-", i))}})
		}
	}()
	r := eddy(t, "", "consume", "live", "--follow", "--max", "5", "--format", "value", "--server", srv.URL)
	if r.code != 0 || strings.Count(r.stdout, "late-") != 5 {
		t.Fatalf("follow: %+v", r)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"topics", "list"}, 2, "--data-dir DIR or --server URL"},
		{[]string{"topics", "list", "--data-dir", "x", "--server", "http://a"}, 2, "not both"},
		{[]string{"consume", "t", "--data-dir", "x", "--from", "yesterday"}, 2, "--from"},
		{[]string{"topics", "create", "--data-dir", "x"}, 2, "want the topic name"},
		{[]string{"topics", "list", "--bogus"}, 2, "unknown flag"},
		{[]string{"topics", "list", "--server", "ftp://x"}, 1, "want http://host:port"},
	} {
		r := eddy(t, "", c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", c.args, r.code, r.stderr, c.code, c.want)
		}
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestRunServesAdminAPIAndLocksTheDataDir(t *testing.T) {
	dir := t.TempDir()
	addr, regAddr := freeAddr(t), freeAddr(t)
	cfg := filepath.Join(t.TempDir(), "eddy.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("data_dir: %s\napi:\n  listen: %q\nregistry:\n  listen: %q\ntopics:\n  - name: orders\n    partitions: 2\n", dir, addr, regAddr)), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var errb bytes.Buffer
	go func() { done <- run(ctx, []string{"run", "-c", cfg}, strings.NewReader(""), io.Discard, &errb) }()
	base := "http://" + addr
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not come up: %v; stderr: %s", err, errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	must(t, eddy(t, "a\nb\nc\n", "produce", "orders", "--server", base))
	// The data directory is locked by the server: direct access says by whom.
	r := eddy(t, "", "topics", "list", "--data-dir", dir)
	if r.code != 1 || !strings.Contains(r.stderr, "locked by another process") || !strings.Contains(r.stderr, fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("second open: %+v", r)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `eddy_log_high_watermark{partition="0",topic="orders"}`) {
		t.Fatalf("metrics lack the log's gauges:\n%.2000s", body)
	}
	// The schema registry answers on its own port.
	resp, err = http.Post("http://"+regAddr+"/subjects/orders-value/versions", "application/vnd.schemaregistry.v1+json", strings.NewReader(`{"schema":"\"string\""}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != `{"id":1}` {
		t.Fatalf("registry: %d %s", resp.StatusCode, body)
	}
	// Avro in the wire format: registered with the CLI, produced through
	// the server, consumed back as JSON.
	schemaFile := filepath.Join(t.TempDir(), "user.avsc")
	os.WriteFile(schemaFile, []byte(`{"type":"record","name":"user","fields":[{"name":"id","type":"long"},{"name":"name","type":"string"}]}`), 0o644)
	if out := must(t, eddy(t, "", "registry", "register", "users-value", schemaFile, "--registry", "http://"+regAddr)); strings.TrimSpace(out) != `{"id":2}` {
		t.Fatalf("registry register: %q", out)
	}
	if out := must(t, eddy(t, "", "registry", "subjects", "--registry", "http://"+regAddr)); !strings.Contains(out, "users-value") {
		t.Fatalf("registry subjects: %q", out)
	}
	if out := must(t, eddy(t, "", "registry", "check", "users-value", schemaFile, "--registry", "http://"+regAddr)); strings.TrimSpace(out) != "compatible" {
		t.Fatalf("registry check: %q", out)
	}
	breaking := filepath.Join(t.TempDir(), "breaking.avsc")
	os.WriteFile(breaking, []byte(`{"type":"record","name":"user","fields":[{"name":"id","type":"long"},{"name":"name","type":"string"},{"name":"age","type":"int"}]}`), 0o644)
	if r := eddy(t, "", "registry", "check", "users-value", breaking, "--registry", "http://"+regAddr); r.code != 1 || !strings.Contains(r.stderr, "incompatible") {
		t.Fatalf("registry check of a breaking change: %+v", r)
	}
	if r := eddy(t, "", "registry", "get", "nobody", "--registry", "http://"+regAddr); r.code != 1 || !strings.Contains(r.stderr, "40401") {
		t.Fatalf("registry get of an unknown subject: %+v", r)
	}
	src, _ := registry.Remote("http://" + regAddr)
	serde := registry.NewSerde(src)
	userSchema := avro.MustParse(`{"type":"record","name":"user","fields":[{"name":"id","type":"long"},{"name":"name","type":"string"}]}`)
	val, err := serde.Encode(context.Background(), nil, "users-value", userSchema, map[string]any{"id": int64(7), "name": "Ada"})
	if err != nil {
		t.Fatal(err)
	}
	must(t, eddy(t, "", "topics", "create", "users", "--server", base))
	client, _ := admin.NewClient(base, "")
	if _, err := client.Produce(context.Background(), "users", []elog.Record{{Key: []byte("7"), Value: val}}); err != nil {
		t.Fatal(err)
	}
	out := must(t, eddy(t, "", "consume", "users", "--server", base, "--registry", "http://"+regAddr))
	if !strings.Contains(out, `"value":{"id":7,"name":"Ada"}`) || !strings.Contains(out, `"value_schema_id":2`) || !strings.Contains(out, `"key":"7"`) {
		t.Fatalf("consume with decoding: %s", out)
	}
	if out := must(t, eddy(t, "", "consume", "users", "--server", base, "--decode", "none")); strings.Contains(out, `"value":{`) || !strings.Contains(out, `\u0000`) {
		t.Fatalf("consume --decode none: %s", out)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("run exited %d: %s", code, errb.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not stop on cancel")
	}
	// After the server stopped, the records are there for direct access,
	// and Avro values decode with the registry kept in the same directory.
	out = must(t, eddy(t, "", "consume", "orders", "--format", "value", "--data-dir", dir))
	if strings.Count(out, "\n") != 3 {
		t.Fatalf("after restart: %q", out)
	}
	if out := must(t, eddy(t, "", "consume", "users", "--format", "value", "--data-dir", dir)); strings.TrimSpace(out) != `{"id":7,"name":"Ada"}` {
		t.Fatalf("decoding from the data directory: %q", out)
	}
}

func TestConfigErrorsNameFileLineAndKey(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"data_dir: x\nbogus: 1\n", "eddy.yaml:2: bogus: unknown key"},
		{"data_dir: x\napi:\n  listen: \":1\"\n  tokn: y\n", "eddy.yaml:4: tokn: unknown key"},
		{"data_dir: x\ntopics:\n  - name: a\n    partitons: 3\n", "eddy.yaml:4: partitons: unknown key"},
		{"data_dir: x\ntopics:\n  - name: a\n    cleanup: sometimes\n", "eddy.yaml:3: topics[0].cleanup"},
		{"data_dir: x\ntopics:\n  - name: a\n    retention: soon\n", "eddy.yaml:3: topics[0].retention"},
		{"data_dir: x\ntopics:\n  - name: \"bad name\"\n", "eddy.yaml:3: topics[0].name"},
		{"data_dir: x\ntopics:\n  - name: a\n  - name: a\n", "eddy.yaml:4: topics[1].name: topic \"a\" is declared twice"},
		{"data_dir: x\napi:\n  listen: [1\n", "eddy.yaml:"},
		{"api:\n  listen: \":1\"\n", "eddy.yaml:1: data_dir: required"},
		{"data_dir: ${EDDY_TEST_SURELY_UNSET}\n", "eddy.yaml: line 1: environment variable EDDY_TEST_SURELY_UNSET is not set"},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "eddy.yaml")
		os.WriteFile(path, []byte(strings.ReplaceAll(c.yaml, "data_dir: x", "data_dir: "+filepath.Join(dir, "data"))), 0o644)
		// A config that wrongly passes would start a server: bound it.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var out, errb bytes.Buffer
		code := run(ctx, []string{"run", "-c", path}, strings.NewReader(""), &out, &errb)
		cancel()
		r := result{code, out.String(), errb.String()}
		if r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("config %q: exit %d, %q; want exit 2 with %q", c.yaml, r.code, r.stderr, c.want)
		}
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "eddy.yaml")
	os.WriteFile(good, []byte("data_dir: "+filepath.Join(dir, "data")+"\ntopics:\n  - name: a\n"), 0o644)
	if out := must(t, eddy(t, "", "validate", "-c", good)); !strings.Contains(out, "ok") {
		t.Fatalf("validate: %q", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Fatal("validate created the data directory")
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("data_dir: x\napi:\n  tls_cert: /nonexistent/cert.pem\n  tls_key: /nonexistent/key.pem\n"), 0o644)
	if r := eddy(t, "", "validate", "-c", bad); r.code != 2 || !strings.Contains(r.stderr, "bad.yaml:3: api.tls_cert") {
		t.Fatalf("validate of a missing certificate: %+v", r)
	}
	half := filepath.Join(dir, "half.yaml")
	os.WriteFile(half, []byte("data_dir: x\napi:\n  tls_key: k.pem\n"), 0o644)
	if r := eddy(t, "", "validate", "-c", half); r.code != 2 || !strings.Contains(r.stderr, "tls_cert and tls_key go together") {
		t.Fatalf("validate of a key without a certificate: %+v", r)
	}
}

func TestAdminTokenIsRequiredAndNeverShown(t *testing.T) {
	l, err := elog.Open(t.TempDir(), elog.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var logs bytes.Buffer
	srv := httptest.NewServer(admin.NewServer(admin.NewLocal(l), slog.New(slog.NewTextHandler(&logs, nil)), admin.WithToken("s3cret-token")))
	defer srv.Close()
	for _, c := range []struct {
		path, auth string
		status     int
	}{
		{"/healthz", "", 200},
		{"/readyz", "", 200},
		{"/topics", "", 401},
		{"/metrics", "", 401},
		{"/topics", "Bearer wrong", 401},
		{"/topics", "s3cret-token", 401},
		{"/topics", "Bearer s3cret-token", 200},
	} {
		req, _ := http.NewRequest("GET", srv.URL+c.path, nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || strings.Contains(string(body), "s3cret") {
			t.Errorf("GET %s with %q: %d %s", c.path, c.auth, resp.StatusCode, body)
		}
	}
	// The CLI sends the token; without it the error is one clear line.
	if r := eddy(t, "", "topics", "list", "--server", srv.URL); r.code != 1 || !strings.Contains(r.stderr, "unauthorized") {
		t.Fatalf("without a token: %+v", r)
	}
	must(t, eddy(t, "", "topics", "list", "--server", srv.URL, "--token", "s3cret-token"))
	if strings.Contains(logs.String(), "s3cret") {
		t.Fatal("the token reached the log")
	}
	cfg := connect.ListenerConfig{Listen: ":1", Token: "s3cret-token", Users: []connect.UserSpec{{Name: "dash", Password: "s3cret-pw", Role: "read"}}}
	if strings.Contains(fmt.Sprint(cfg), "s3cret") {
		t.Fatal("the token shows when the config is printed")
	}
}

func TestRunServesTLS(t *testing.T) {
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "eddy.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("data_dir: %s\napi:\n  listen: %q\n  tls_cert: %s\n  tls_key: %s\nregistry:\n  listen: %q\n",
		filepath.Join(dir, "data"), addr, certFile, keyFile, freeAddr(t))), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"run", "-c", cfg}, strings.NewReader(""), io.Discard, io.Discard) }()
	defer func() { cancel(); <-done }()
	pool := x509.NewCertPool()
	pool.AddCert(mustParseCert(t, der))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get("https://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("healthz over TLS: %d", resp.StatusCode)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no TLS answer: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil && resp.StatusCode == 200 {
		t.Fatal("plain HTTP served on the TLS listener")
	}
}

func mustParseCert(t *testing.T, der []byte) *x509.Certificate {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
