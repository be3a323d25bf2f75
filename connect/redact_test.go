package connect

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

func TestDSNPasswords(t *testing.T) {
	for _, c := range []struct{ dsn, want string }{
		{"postgres://eddy:p%40ss@db:5432/shop", "p@ss"},
		{"mysql://eddy:pw-1@127.0.0.1:3306/shop", "pw-1"},
		{"eddy:pw-2@tcp(127.0.0.1:3306)/shop", "pw-2"},
		{"host=db user=eddy password=pw-3 dbname=shop", "pw-3"},
		{"host=db password='pw 4' dbname=shop", "pw 4"},
	} {
		if got := dsnPasswords(c.dsn); !slices.Contains(got, c.want) {
			t.Errorf("%s: %q lacks %q", c.dsn, got, c.want)
		}
	}
}

// What a connector logs and reports passes through its redactor: a
// secret, whole or as the password of its DSN, in a message, a string,
// an error or a group, becomes <redacted>.
func TestRedactor(t *testing.T) {
	r := newRedactor(append([]string{"postgres://eddy:pw-S3cr3t@db/shop", "salt-S3cr3t", "ab"}, dsnPasswords("postgres://eddy:pw-S3cr3t@db/shop")...))
	if got := r.text("connect postgres://eddy:pw-S3cr3t@db/shop: refused; password pw-S3cr3t; salt-S3cr3t; ab"); got != "connect <redacted>: refused; password <redacted>; <redacted>; ab" {
		t.Fatalf("text: %q", got)
	}
	var buf bytes.Buffer
	log := slog.New(r.handler(slog.NewTextHandler(&buf, nil))).With("dsn", "postgres://eddy:pw-S3cr3t@db/shop")
	log.Warn("failed with pw-S3cr3t", "err", fmt.Errorf("dial: %w", errors.New("auth pw-S3cr3t")), slog.Group("g", "salt", "salt-S3cr3t"), "n", 3)
	out := buf.String()
	if strings.Contains(out, "S3cr3t") || strings.Count(out, "<redacted>") != 4 || !strings.Contains(out, "n=3") {
		t.Fatalf("log line: %s", out)
	}
}
