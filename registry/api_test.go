package registry

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"
	hregistry "github.com/hamba/avro/v2/registry"
)

func testAPI(t *testing.T) (*httptest.Server, *Registry) {
	t.Helper()
	l := openLog(t, t.TempDir())
	r := openRegistry(t, l)
	srv := httptest.NewServer(NewAPI(r, slog.New(slog.NewTextHandler(io.Discard, nil))))
	t.Cleanup(func() { srv.Close(); l.Close() })
	return srv, r
}

// An existing third-party client of Confluent's API, unmodified, works.
func TestConfluentClientEndToEnd(t *testing.T) {
	srv, _ := testAPI(t)
	ctx := context.Background()
	c, err := hregistry.NewClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	id1, _, err := c.CreateSchema(ctx, "users-value", userV1)
	if err != nil || id1 != 1 {
		t.Fatalf("create: %d %v", id1, err)
	}
	id2, _, err := c.CreateSchema(ctx, "users-value", userV2)
	if err != nil || id2 != 2 {
		t.Fatalf("create v2: %d %v", id2, err)
	}
	if id, _, err := c.CreateSchema(ctx, "users-value", userV1); err != nil || id != id1 {
		t.Fatalf("re-create: %d %v", id, err)
	}
	sch, err := c.GetSchema(ctx, id2)
	if err != nil || sch.Fingerprint() != avro.MustParse(userV2).Fingerprint() {
		t.Fatalf("get by id: %v %v", sch, err)
	}
	if subs, err := c.GetSubjects(ctx); err != nil || !reflect.DeepEqual(subs, []string{"users-value"}) {
		t.Fatalf("subjects: %v %v", subs, err)
	}
	if vs, err := c.GetVersions(ctx, "users-value"); err != nil || !reflect.DeepEqual(vs, []int{1, 2}) {
		t.Fatalf("versions: %v %v", vs, err)
	}
	info, err := c.GetLatestSchemaInfo(ctx, "users-value")
	if err != nil || info.ID != 2 || info.Version != 2 {
		t.Fatalf("latest info: %+v %v", info, err)
	}
	if id, _, err := c.IsRegistered(ctx, "users-value", userV1); err != nil || id != 1 {
		t.Fatalf("is registered: %d %v", id, err)
	}
	if ok, err := c.IsCompatible(ctx, "users-value", userV3); err != nil || ok {
		t.Fatalf("userV3 must be incompatible under BACKWARD: %v %v", ok, err)
	}
	_, _, err = c.CreateSchema(ctx, "users-value", userV3)
	var herr hregistry.Error
	if !errors.As(err, &herr) || herr.Code != 409 {
		t.Fatalf("incompatible create: %v", err)
	}
	if err := c.SetCompatibilityLevel(ctx, "users-value", "NONE"); err != nil {
		t.Fatal(err)
	}
	if lvl, err := c.GetCompatibilityLevel(ctx, "users-value"); err != nil || lvl != "NONE" {
		t.Fatalf("subject level: %s %v", lvl, err)
	}
	if lvl, err := c.GetGlobalCompatibilityLevel(ctx); err != nil || lvl != "BACKWARD" {
		t.Fatalf("global level: %s %v", lvl, err)
	}
	if _, _, err := c.CreateSchema(ctx, "users-value", userV3); err != nil {
		t.Fatalf("create under NONE: %v", err)
	}
	if err := c.SetGlobalCompatibilityLevel(ctx, "FULL"); err != nil {
		t.Fatal(err)
	}
	if vs, err := c.DeleteSubject(ctx, "users-value"); err != nil || !reflect.DeepEqual(vs, []int{1, 2, 3}) {
		t.Fatalf("delete subject: %v %v", vs, err)
	}
	if _, err := c.GetLatestSchema(ctx, "users-value"); !errors.As(err, &herr) || herr.Code != 40401 {
		t.Fatalf("deleted subject: %v", err)
	}
}

func call(t *testing.T, method, url, body string) (int, apiError, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", ContentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e apiError
	json.Unmarshal(b, &e)
	if ct := resp.Header.Get("Content-Type"); ct != ContentType {
		t.Errorf("%s %s: content type %q", method, url, ct)
	}
	return resp.StatusCode, e, string(b)
}

func TestBadInputGetsConfluentErrors(t *testing.T) {
	srv, r := testAPI(t)
	mustRegister(t, r, "s", userV1)
	body := func(schema string) string { b, _ := json.Marshal(schemaRequest{Schema: schema}); return string(b) }
	for _, c := range []struct {
		method, path, body string
		status, code       int
	}{
		{"GET", "/subjects/nope/versions", "", 404, 40401},
		{"GET", "/subjects/s/versions/7", "", 404, 40402},
		{"GET", "/subjects/s/versions/0", "", 422, 42202},
		{"GET", "/subjects/s/versions/abc", "", 422, 42202},
		{"GET", "/schemas/ids/99", "", 404, 40403},
		{"GET", "/schemas/ids/x", "", 404, 40403},
		{"POST", "/subjects/s", body(userV2), 404, 40403},
		{"POST", "/subjects/nope", body(userV1), 404, 40401},
		{"POST", "/subjects/s/versions", `{"schema": `, 400, 400},
		{"POST", "/subjects/s/versions", body(`{"type":"record"}`), 422, 42201},
		{"POST", "/subjects/s/versions", body(`not json`), 422, 42201},
		{"POST", "/subjects/s/versions", body(""), 422, 42201},
		{"POST", "/subjects/s/versions", `{"schema":"\"int\"","schemaType":"PROTOBUF"}`, 422, 42201},
		{"POST", "/subjects/s/versions", `{"schema":"` + strings.Repeat("x", maxRequestBytes) + `"}`, 413, 413},
		{"POST", "/subjects/s/versions", body(userV3), 409, 409},
		{"PUT", "/config", `{"compatibility":"SIDEWAYS"}`, 422, 42203},
		{"GET", "/config/s", "", 404, 40408},
		{"DELETE", "/subjects/s/versions/1?permanent=true", "", 404, 40407},
		{"DELETE", "/subjects/s?permanent=true", "", 404, 40405},
		{"POST", "/compatibility/subjects/s/versions/0", body(userV2), 422, 42202},
	} {
		status, e, raw := call(t, c.method, srv.URL+c.path, c.body)
		if status != c.status || e.ErrorCode != c.code || e.Message == "" {
			t.Errorf("%s %s: %d %s; want %d with error_code %d", c.method, c.path, status, raw, c.status, c.code)
		}
	}
	// None of that changed anything.
	if vs, _ := r.Versions("s", true); !reflect.DeepEqual(vs, []int{1}) || r.Level("") != Backward {
		t.Fatalf("bad requests changed state: versions %v, level %s", vs, r.Level(""))
	}
	// Soft delete twice: 40406; then permanent works.
	if status, _, _ := call(t, "DELETE", srv.URL+"/subjects/s/versions/1", ""); status != 200 {
		t.Fatalf("soft delete: %d", status)
	}
	if status, e, _ := call(t, "DELETE", srv.URL+"/subjects/s/versions/1", ""); status != 404 || e.ErrorCode != 40406 {
		t.Fatalf("second soft delete: %d %+v", status, e)
	}
	if status, _, raw := call(t, "DELETE", srv.URL+"/subjects/s/versions/1?permanent=true", ""); status != 200 || strings.TrimSpace(raw) != "1" {
		t.Fatalf("permanent delete: %d %s", status, raw)
	}
}

func TestCompatibilityVerboseAndRawSchema(t *testing.T) {
	srv, r := testAPI(t)
	mustRegister(t, r, "s", userV1)
	b, _ := json.Marshal(schemaRequest{Schema: userV3})
	status, _, raw := call(t, "POST", srv.URL+"/compatibility/subjects/s/versions/latest?verbose=true", string(b))
	var res compatibilityBody
	json.Unmarshal([]byte(raw), &res)
	if status != 200 || res.IsCompatible || len(res.Messages) == 0 {
		t.Fatalf("verbose check: %d %s", status, raw)
	}
	status, _, raw = call(t, "GET", srv.URL+"/subjects/s/versions/1/schema", "")
	if status != 200 || raw != userV1 {
		t.Fatalf("raw schema: %d %q", status, raw)
	}
	status, _, raw = call(t, "GET", srv.URL+"/schemas/ids/1/versions", "")
	if status != 200 || !strings.Contains(raw, `"subject":"s"`) {
		t.Fatalf("versions of id: %d %s", status, raw)
	}
	status, _, raw = call(t, "GET", srv.URL+"/schemas/types", "")
	if status != 200 || !strings.Contains(raw, "AVRO") {
		t.Fatalf("types: %d %s", status, raw)
	}
}
