package connect

import (
	"context"
	"log/slog"
	"net/url"
	"regexp"
	"sort"
	"strings"
)

// Secrets lists what must never be shown of p: the value of each secret
// parameter, and the password inside one that is a DSN (a URL's, a
// key=value DSN's password=, or MySQL's user:password@), since a driver's
// error may quote that part alone.
func (p Params) Secrets() []string {
	var out []string
	for k, v := range p.values {
		prm := p.plugin.Param(k)
		s, ok := v.(string)
		if prm == nil || !prm.Secret || !ok || s == "" {
			continue
		}
		out = append(out, s)
		out = append(out, dsnPasswords(s)...)
	}
	return out
}

var (
	kvPasswordRE = regexp.MustCompile(`(?i)\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|[^\s]+)`)
	myPasswordRE = regexp.MustCompile(`^(?:[a-z]+://)?[^:@/]*:([^@]+)@`)
)

func dsnPasswords(s string) []string {
	var out []string
	if u, err := url.Parse(s); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			out = append(out, pw, url.QueryEscape(pw), url.PathEscape(pw))
		}
	}
	for _, m := range kvPasswordRE.FindAllStringSubmatch(s, -1) {
		out = append(out, strings.Trim(m[1], "'"))
	}
	if m := myPasswordRE.FindStringSubmatch(s); m != nil {
		out = append(out, m[1])
	}
	return out
}

// redactor replaces secrets in text with <redacted>, longest first so a
// password inside a DSN goes with the DSN.
type redactor struct{ r *strings.Replacer }

func newRedactor(secrets []string) *redactor {
	seen := map[string]bool{}
	var list []string
	for _, s := range secrets {
		if len(s) >= 3 && !seen[s] { // shorter ones would mangle ordinary words
			seen[s] = true
			list = append(list, s)
		}
	}
	if len(list) == 0 {
		return &redactor{}
	}
	sort.Slice(list, func(i, j int) bool { return len(list[i]) > len(list[j]) })
	pairs := make([]string, 0, 2*len(list))
	for _, s := range list {
		pairs = append(pairs, s, "<redacted>")
	}
	return &redactor{strings.NewReplacer(pairs...)}
}

func (r *redactor) text(s string) string {
	if r == nil || r.r == nil {
		return s
	}
	return r.r.Replace(s)
}

// handler wraps a logger's handler so that no attribute or message it
// writes holds a secret: the connector's plugin and runtime log through it.
func (r *redactor) handler(next slog.Handler) slog.Handler {
	if r == nil || r.r == nil {
		return next
	}
	return redactHandler{r, next}
}

type redactHandler struct {
	r    *redactor
	next slog.Handler
}

func (h redactHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h redactHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, h.r.text(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h redactHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.r.text(v.String()))
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, h.r.text(err.Error()))
		}
		return slog.String(a.Key, h.r.text(v.String()))
	case slog.KindGroup:
		attrs := v.Group()
		out := make([]any, len(attrs))
		for i, g := range attrs {
			out[i] = h.attr(g)
		}
		return slog.Group(a.Key, out...)
	}
	return a
}

func (h redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = h.attr(a)
	}
	return redactHandler{h.r, h.next.WithAttrs(out)}
}

func (h redactHandler) WithGroup(name string) slog.Handler {
	return redactHandler{h.r, h.next.WithGroup(name)}
}
