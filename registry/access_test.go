package registry

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	hregistry "github.com/hamba/avro/v2/registry"

	"github.com/eddy-cdc/eddy/internal/access"
	"github.com/eddy-cdc/eddy/internal/logbuf"
)

// guardedAPI serves a registry with a reader and a writer by HTTP Basic
// and one token of each role, and returns the audit log.
func guardedAPI(t *testing.T) (*httptest.Server, *logbuf.Buffer) {
	t.Helper()
	l := openLog(t, t.TempDir())
	r := openRegistry(t, l)
	logs := &logbuf.Buffer{}
	srv := httptest.NewServer(NewAPI(r, slog.New(slog.NewTextHandler(logs, nil)), WithUsers([]access.User{
		{Name: "reader", Password: "read-pw-s3cret", Role: access.RoleRead},
		{Name: "writer", Password: "write-pw-s3cret", Role: access.RoleWrite},
		{Name: "dash", Token: "read-token-s3cret", Role: access.RoleRead},
		{Name: "ci", Token: "write-token-s3cret", Role: access.RoleWrite},
	})))
	t.Cleanup(func() { srv.Close(); l.Close() })
	ctx := context.Background()
	for _, subj := range []string{"users-value", "old-value"} {
		if _, _, err := r.Register(ctx, subj, userV1, nil); err != nil {
			t.Fatal(err)
		}
	}
	return srv, logs
}

// Every endpoint, with no credentials, wrong ones, the read role and the
// write role, by HTTP Basic and by bearer token: reads, lookups and
// compatibility checks are the read role's; registering, deleting, config
// and mode are the write role's; the refusals are Confluent's error shape.
func TestRegistryRoles(t *testing.T) {
	srv, logs := guardedAPI(t)
	schema := func(s string) string { b, _ := json.Marshal(map[string]string{"schema": s}); return string(b) }
	type auth struct {
		name   string
		set    func(*http.Request)
		writes bool // the role may write
		ok     bool // the credentials are accepted
	}
	auths := []auth{
		{"none", func(*http.Request) {}, false, false},
		{"wrong password", func(r *http.Request) { r.SetBasicAuth("writer", "nope") }, false, false},
		{"unknown token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer nope") }, false, false},
		{"read basic", func(r *http.Request) { r.SetBasicAuth("reader", "read-pw-s3cret") }, false, true},
		{"read token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer read-token-s3cret") }, false, true},
		{"write token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer write-token-s3cret") }, true, true},
		{"write basic", func(r *http.Request) { r.SetBasicAuth("writer", "write-pw-s3cret") }, true, true},
	}
	for _, ep := range []struct {
		method, path, body string
		write              bool
		status             int // for a role that may
	}{
		{"GET", "/", "", false, 200},
		{"GET", "/subjects", "", false, 200},
		{"GET", "/subjects/users-value/versions", "", false, 200},
		{"GET", "/subjects/users-value/versions/1", "", false, 200},
		{"GET", "/subjects/users-value/versions/latest/schema", "", false, 200},
		{"GET", "/subjects/users-value/versions/1/referencedby", "", false, 200},
		{"GET", "/schemas/ids/1", "", false, 200},
		{"GET", "/schemas/ids/1/schema", "", false, 200},
		{"GET", "/schemas/ids/1/versions", "", false, 200},
		{"GET", "/schemas/types", "", false, 200},
		{"GET", "/config", "", false, 200},
		{"GET", "/config/users-value?defaultToGlobal=true", "", false, 200},
		{"GET", "/mode", "", false, 200},
		{"GET", "/mode/users-value?defaultToGlobal=true", "", false, 200},
		{"POST", "/subjects/users-value", schema(userV1), false, 200},
		{"POST", "/compatibility/subjects/users-value/versions/latest", schema(userV2), false, 200},
		{"POST", "/compatibility/subjects/users-value/versions", schema(userV2), false, 200},
		{"POST", "/subjects/users-value/versions", schema(userV2), true, 200},
		{"PUT", "/config", `{"compatibility":"FULL"}`, true, 200},
		{"PUT", "/config/users-value", `{"compatibility":"NONE"}`, true, 200},
		{"DELETE", "/config/users-value", "", true, 200},
		{"DELETE", "/config", "", true, 200},
		{"PUT", "/mode/users-value", `{"mode":"READWRITE"}`, true, 200},
		{"DELETE", "/mode/users-value", "", true, 200},
		{"PUT", "/mode", `{"mode":"READWRITE"}`, true, 200},
		{"DELETE", "/subjects/old-value/versions/1", "", true, 200},
		{"DELETE", "/subjects/old-value?permanent=true", "", true, 200},
	} {
		for _, a := range auths {
			if ep.write && a.writes && a.name != "write basic" {
				continue // the change is made once, by the last credential
			}
			req, _ := http.NewRequest(ep.method, srv.URL+ep.path, strings.NewReader(ep.body))
			req.Header.Set("Content-Type", ContentType)
			a.set(req)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body struct {
				Code    int    `json:"error_code"`
				Message string `json:"message"`
			}
			json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			want, code := ep.status, 0
			switch {
			case !a.ok:
				want, code = 401, 40101
			case ep.write && !a.writes:
				want, code = 403, 40301
			}
			if resp.StatusCode != want || (code != 0 && body.Code != code) {
				t.Errorf("%s %s as %s: %d %d %q, want %d %d", ep.method, ep.path, a.name, resp.StatusCode, body.Code, body.Message, want, code)
			}
			if want == 401 && !strings.Contains(resp.Header.Get("WWW-Authenticate"), "Basic") {
				t.Errorf("%s %s as %s: no WWW-Authenticate: Basic", ep.method, ep.path, a.name)
			}
		}
	}

	// Audit: each change once, with who and the result; refusals too; no
	// secret anywhere.
	out := logs.String()
	for _, want := range []string{
		`msg=audit listener="schema registry" who=writer method=POST path=/subjects/users-value/versions status=200`,
		`msg=audit listener="schema registry" who=reader method=DELETE path=/subjects/old-value/versions/1 status=403`,
		`msg=audit listener="schema registry" who=anonymous method=PUT path=/mode status=401`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("audit log lacks %s", want)
		}
	}
	if strings.Contains(out, "path=/subjects/users-value status") || strings.Contains(out, "method=GET") {
		t.Error("reads and lookups are audited as changes")
	}
	if strings.Contains(out, "s3cret") {
		t.Error("a secret reached the log")
	}
}

// The hamba client, as applications configure it with
// basic.auth.user.info: a consumer's credentials read schemas and cannot
// register one; a producer's can.
func TestRegistryRolesConfluentClient(t *testing.T) {
	srv, _ := guardedAPI(t)
	ctx := context.Background()
	client := func(opts ...hregistry.ClientFunc) *hregistry.Client {
		c, err := hregistry.NewClient(srv.URL, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	status := func(err error) int {
		var he hregistry.Error
		if errors.As(err, &he) {
			return he.StatusCode
		}
		return 0
	}
	if _, err := client().GetSubjects(ctx); status(err) != 401 {
		t.Fatalf("no credentials: %v", err)
	}
	reader := client(hregistry.WithBasicAuth("reader", "read-pw-s3cret"))
	if _, err := reader.GetSchema(ctx, 1); err != nil {
		t.Fatalf("reader get schema: %v", err)
	}
	if _, _, err := reader.IsRegistered(ctx, "users-value", userV1); err != nil {
		t.Fatalf("reader lookup: %v", err)
	}
	if ok, err := reader.IsCompatible(ctx, "users-value", userV2); err != nil || !ok {
		t.Fatalf("reader compatibility: %v %v", ok, err)
	}
	if _, _, err := reader.CreateSchema(ctx, "users-value", userV2); status(err) != 403 {
		t.Fatalf("reader register: %v, want 403", err)
	}
	if err := reader.SetCompatibilityLevel(ctx, "users-value", "NONE"); err == nil {
		t.Fatal("reader changed a compatibility level")
	}
	writer := client(hregistry.WithBasicAuth("writer", "write-pw-s3cret"))
	if id, _, err := writer.CreateSchema(ctx, "users-value", userV2); err != nil || id != 2 {
		t.Fatalf("writer register: %d %v", id, err)
	}
	if _, err := writer.DeleteSubject(ctx, "old-value"); err != nil {
		t.Fatalf("writer delete: %v", err)
	}
	// The Source Eddy's own tools use sends the same credentials.
	src, err := Remote(srv.URL, RemoteOptions{Token: "read-token-s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.SchemaByID(ctx, 1); err != nil {
		t.Fatalf("Remote with a token: %v", err)
	}
	if _, err := src.RegisterSchema(ctx, "x-value", userV1); status(err) != 403 {
		t.Fatalf("Remote with a read token registered: %v", err)
	}
}
