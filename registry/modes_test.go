package registry

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// READONLY freezes schemas: registering a new one, deleting, and changing
// compatibility answer 422 42205, globally or for one subject; what is
// already registered still resolves, so running pipelines go on; the mode
// itself can always change, and it survives a restart.
func TestRegistryReadOnlyMode(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	r := openRegistry(t, l)
	srv := httptest.NewServer(NewAPI(r, slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer srv.Close()
	call := func(method, path, body string) (int, int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", ContentType)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var e struct {
			Code int    `json:"error_code"`
			Mode string `json:"mode"`
		}
		json.Unmarshal(b, &e)
		return resp.StatusCode, e.Code, string(b)
	}
	schema := func(s string) string { b, _ := json.Marshal(map[string]string{"schema": s}); return string(b) }
	expect := func(method, path, body string, status, code int) string {
		t.Helper()
		st, c, b := call(method, path, body)
		if st != status || c != code {
			t.Fatalf("%s %s: %d %s, want %d %d", method, path, st, b, status, code)
		}
		return b
	}
	expect("POST", "/subjects/a-value/versions", schema(userV1), 200, 0)
	expect("POST", "/subjects/b-value/versions", schema(userV1), 200, 0)
	if b := expect("GET", "/mode", "", 200, 0); !strings.Contains(b, `"READWRITE"`) {
		t.Fatalf("default mode: %s", b)
	}
	expect("GET", "/mode/a-value", "", 404, 40409)
	expect("PUT", "/mode", `{"mode":"IMPORT"}`, 422, 42204)
	expect("PUT", "/mode", `{"mode":"sideways"}`, 422, 42204)

	// One subject frozen.
	expect("PUT", "/mode/a-value", `{"mode":"readonly"}`, 200, 0)
	expect("POST", "/subjects/a-value/versions", schema(userV2), 422, 42205)
	expect("POST", "/subjects/a-value/versions", schema(userV1), 200, 0) // already there: no change
	expect("DELETE", "/subjects/a-value/versions/1", "", 422, 42205)
	expect("PUT", "/config/a-value", `{"compatibility":"NONE"}`, 422, 42205)
	expect("POST", "/subjects/b-value/versions", schema(userV2), 200, 0) // another subject is not
	if b := expect("GET", "/mode/a-value", "", 200, 0); !strings.Contains(b, `"READONLY"`) {
		t.Fatalf("subject mode: %s", b)
	}

	// Everything frozen, and so after a restart.
	expect("PUT", "/mode", `{"mode":"READONLY"}`, 200, 0)
	expect("POST", "/subjects/c-value/versions", schema(userV1), 422, 42205)
	expect("PUT", "/config", `{"compatibility":"NONE"}`, 422, 42205)
	l.Close()
	l = openLog(t, dir)
	defer l.Close()
	r = openRegistry(t, l)
	if r.Mode("") != ReadOnly || r.Mode("a-value") != ReadOnly {
		t.Fatalf("after a restart: global %s, a-value %s", r.Mode(""), r.Mode("a-value"))
	}
	srv.Config.Handler = NewAPI(r, slog.New(slog.NewTextHandler(io.Discard, nil)))
	expect("POST", "/subjects/c-value/versions", schema(userV1), 422, 42205)
	expect("GET", "/schemas/ids/1", "", 200, 0) // reads go on
	expect("PUT", "/mode", `{"mode":"READWRITE"}`, 200, 0)
	expect("POST", "/subjects/c-value/versions", schema(userV1), 200, 0)
	expect("POST", "/subjects/a-value/versions", schema(userV2), 422, 42205) // its own mode stays
	if b := expect("DELETE", "/mode/a-value", "", 200, 0); !strings.Contains(b, `"READONLY"`) {
		t.Fatalf("delete subject mode answers the old one: %s", b)
	}
	expect("POST", "/subjects/a-value/versions", schema(userV2), 200, 0)
	expect("DELETE", "/mode/a-value", "", 404, 40401)
}
