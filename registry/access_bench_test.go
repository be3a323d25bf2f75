package registry

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/eddy-cdc/eddy/internal/access"
)

// What the door policy costs a schema lookup by id, the request every
// consumer makes: open, HTTP Basic, and a bearer token among 20 users.
func BenchmarkSchemaByIDDoor(b *testing.B) {
	users := make([]access.User, 20)
	for i := range users {
		users[i] = access.User{Name: "u" + string(rune('a'+i)), Password: "pw-" + string(rune('a'+i)), Token: "tok-" + string(rune('a'+i)), Role: access.RoleRead}
	}
	for _, c := range []struct {
		name  string
		users []access.User
		set   func(*http.Request)
	}{
		{"open", nil, func(*http.Request) {}},
		{"basic", users, func(r *http.Request) { r.SetBasicAuth("ut", "pw-t") }},
		{"bearer", users, func(r *http.Request) { r.Header.Set("Authorization", "Bearer tok-t") }},
	} {
		b.Run(c.name, func(b *testing.B) {
			l := openLog(b, b.TempDir())
			defer l.Close()
			r, err := Open(context.Background(), l)
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := r.Register(context.Background(), "u-value", userV1, nil); err != nil {
				b.Fatal(err)
			}
			api := NewAPI(r, slog.New(slog.NewTextHandler(io.Discard, nil)), WithUsers(c.users))
			req := httptest.NewRequest("GET", "/schemas/ids/1", nil)
			c.set(req)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				w := httptest.NewRecorder()
				api.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}
