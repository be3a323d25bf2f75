package connect_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eddy-cdc/eddy/admin"
	"github.com/eddy-cdc/eddy/internal/access"
	"github.com/eddy-cdc/eddy/internal/logbuf"
)

// The admin API's roles: health for anyone; with a read credential every
// GET (dashboards, metrics) and nothing else (403); with the admin role
// everything. Refusals are in the API's error shape, changes are audited.
func TestAdminRoles(t *testing.T) {
	dir := t.TempDir()
	h := start(t, dir, `
connectors:
  - name: gen
    plugin: datagen-source
    config: {rate: 200, tables: [orders], topic_prefix: a}
  - name: out
    plugin: file-sink
    topics: [a.public.orders]
    config: {path: `+filepath.Join(dir, "out.jsonl")+`}
`)
	logs := &logbuf.Buffer{}
	srv := httptest.NewServer(admin.NewServer(admin.NewLocal(h.log), slog.New(slog.NewTextHandler(logs, nil)),
		admin.WithToken("admin-token-s3cret"),
		admin.WithUsers([]access.User{
			{Name: "dash", Token: "read-token-s3cret", Role: access.RoleRead},
			{Name: "ops", Password: "ops-pw-s3cret", Role: access.RoleWrite},
		}),
		admin.WithWorker(h.w, h.cat)))
	defer srv.Close()
	waitFor(t, "the topic", 10*time.Second, func() bool { _, err := h.log.Topic("a.public.orders"); return err == nil })

	creds := []struct {
		name  string
		set   func(*http.Request)
		role  int // 0 none, 1 read, 2 admin
		basic bool
	}{
		{"none", func(*http.Request) {}, 0, false},
		{"wrong token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer nope") }, 0, false},
		{"read token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer read-token-s3cret") }, 1, false},
		{"admin basic", func(r *http.Request) { r.SetBasicAuth("ops", "ops-pw-s3cret") }, 2, true},
		{"admin token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer admin-token-s3cret") }, 2, false},
	}
	for _, ep := range []struct {
		method, path, body string
		need               int // role needed: 0 open
		status             int
	}{
		{"GET", "/healthz", "", 0, 200},
		{"GET", "/readyz", "", 0, 200},
		{"GET", "/metrics", "", 1, 200},
		{"GET", "/topics", "", 1, 200},
		{"GET", "/topics/a.public.orders", "", 1, 200},
		{"GET", "/topics/a.public.orders/partitions/0/offsets?at=latest", "", 1, 200},
		{"GET", "/groups", "", 1, 200},
		{"GET", "/connectors?expand=status", "", 1, 200},
		{"GET", "/connectors/gen/status", "", 1, 200},
		{"GET", "/connectors/out/offsets", "", 1, 200},
		{"GET", "/connector-plugins", "", 1, 200},
		{"GET", "/jobs", "", 1, 200},
		{"POST", "/topics", `{"name":"made","config":{"partitions":1}}`, 2, 201},
		{"POST", "/topics/made/records", `{"records":[{"value":"x"}]}`, 2, 200},
		{"DELETE", "/topics/made", "", 2, 204},
		{"PUT", "/connectors/gen/pause", "", 2, 202},
		{"PUT", "/connectors/gen/resume", "", 2, 202},
		{"PUT", "/connectors/out/stop", "", 2, 204},
		{"DELETE", "/connectors/out/offsets", "", 2, 200},
		{"POST", "/connectors/gen/restart", "", 2, 204},
		{"DELETE", "/connectors/out", "", 2, 200},
	} {
		for _, c := range creds {
			if ep.need == 2 && c.role == 2 && c.name != "admin token" {
				continue // made once, by the last credential
			}
			req, _ := http.NewRequest(ep.method, srv.URL+ep.path, strings.NewReader(ep.body))
			if ep.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			c.set(req)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var e struct {
				Code    string `json:"error_code"`
				Message string `json:"message"`
			}
			json.NewDecoder(resp.Body).Decode(&e)
			resp.Body.Close()
			want, code := ep.status, ""
			switch {
			case ep.need > 0 && c.role == 0:
				want, code = 401, "unauthorized"
			case c.role < ep.need:
				want, code = 403, "forbidden"
			}
			if resp.StatusCode != want || e.Code != code {
				t.Errorf("%s %s as %s: %d %q %q, want %d %q", ep.method, ep.path, c.name, resp.StatusCode, e.Code, e.Message, want, code)
			}
		}
	}
	// The client says which: 403 is ErrForbidden, 401 ErrUnauthorized.
	ctx := context.Background()
	ro, _ := admin.NewClient(srv.URL, "read-token-s3cret")
	if _, err := ro.ListTopics(ctx); err != nil {
		t.Fatalf("read client lists topics: %v", err)
	}
	if err := ro.ControlConnector(ctx, "gen", "pause"); !errors.Is(err, admin.ErrForbidden) {
		t.Fatalf("read client pauses: %v, want ErrForbidden", err)
	}
	basic, _ := admin.NewClient(srv.URL, "", admin.WithUserInfo("ops:ops-pw-s3cret"))
	if err := basic.ControlConnector(ctx, "gen", "pause"); err != nil {
		t.Fatalf("admin by HTTP Basic pauses: %v", err)
	}
	anon, _ := admin.NewClient(srv.URL, "")
	if _, err := anon.ListTopics(ctx); !errors.Is(err, admin.ErrUnauthorized) {
		t.Fatalf("anonymous client: %v, want ErrUnauthorized", err)
	}
	out := logs.String()
	for _, want := range []string{
		`msg=audit listener="admin API" who=token method=PUT path=/connectors/gen/pause status=202`,
		`msg=audit listener="admin API" who=dash method=DELETE path=/connectors/out status=403`,
		`msg=audit listener="admin API" who=ops method=PUT path=/connectors/gen/pause status=202`,
		`msg=audit listener="admin API" who=anonymous method=POST path=/topics status=401`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("audit log lacks %s", want)
		}
	}
	if strings.Contains(out, "s3cret") {
		t.Error("a secret reached the log")
	}
}
