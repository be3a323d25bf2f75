// Package access is the door policy every listener of Eddy shares: who may
// come in (HTTP Basic, as Confluent clients send basic.auth.user.info, or
// a bearer token), what their role lets them do, TLS with optional client
// certificates, and an audit line for every request that changes state.
// Each listener supplies what is its own: which role a request needs and
// how its protocol says no.
package access

import (
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
)

// Role is what a credential may do. Roles are ordered: a higher one may
// do everything a lower one may.
type Role int

// The roles. Write is the registry's "write" and the admin API's "admin".
const (
	RoleRead  Role = iota + 1 // look, never change
	RoleWrite                 // change
)

// User is one credential: a name, the secrets that prove it (a password
// for HTTP Basic, a bearer token, or both) and a role.
type User struct {
	Name     string
	Password string
	Token    string
	Role     Role
}

// String names the user and never its secrets.
func (u User) String() string { return fmt.Sprintf("user %s (role %d)", u.Name, u.Role) }

// Policy guards one listener.
type Policy struct {
	// Listener names the listener in audit lines ("schema registry").
	Listener string
	// Users may come in; none means the listener is open (and should
	// listen on a loopback address only).
	Users []User
	// Open lists paths served to anyone (health checks).
	Open []string
	// Need says which role a request needs.
	Need func(r *http.Request) Role
	// Deny writes the protocol's refusal: status 401 or 403.
	Deny func(w http.ResponseWriter, status int, msg string)
	// Realm is sent in WWW-Authenticate with a 401.
	Realm string
	Log   *slog.Logger
}

// Guard wraps next with the policy. Every request that needs the write
// role, let in or refused, is logged once at info level, with who made it
// (the credential's name, never its secret) and the status it got.
func (p *Policy) Guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		need := p.Need(r)
		if need < RoleWrite { // a read: nothing to audit
			p.serve(w, r, next, need)
			return
		}
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		who := p.serve(rec, r, next, need)
		p.Log.Info("audit", "listener", p.Listener, "who", who, "method", r.Method, "path", r.URL.Path, "status", rec.status)
	})
}

func (p *Policy) serve(w http.ResponseWriter, r *http.Request, next http.Handler, need Role) string {
	if slices.Contains(p.Open, r.URL.Path) {
		next.ServeHTTP(w, r)
		return "anonymous"
	}
	u, err := p.authenticate(r)
	who := "anonymous"
	if u != nil {
		who = u.Name
	} else if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		who = "certificate " + r.TLS.PeerCertificates[0].Subject.String()
	}
	if len(p.Users) == 0 {
		next.ServeHTTP(w, r)
		return who
	}
	if err != nil {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Basic realm=%q, Bearer realm=%q`, p.Realm, p.Realm))
		p.Deny(w, http.StatusUnauthorized, err.Error())
		return who
	}
	if u.Role < need {
		p.Deny(w, http.StatusForbidden, fmt.Sprintf("%s may not %s %s: its role is read-only", u.Name, r.Method, r.URL.Path))
		return who
	}
	next.ServeHTTP(w, r)
	return who
}

var (
	errNoCredentials  = errors.New("this listener needs credentials: HTTP Basic (user:password) or Authorization: Bearer <token>")
	errBadCredentials = errors.New("the credentials were not accepted")
)

// authenticate finds the user the request's credentials prove, comparing
// secrets in constant time.
func (p *Policy) authenticate(r *http.Request) (*User, error) {
	if name, pass, ok := r.BasicAuth(); ok {
		for i := range p.Users {
			u := &p.Users[i]
			if u.Password != "" && u.Name == name && subtle.ConstantTimeCompare([]byte(pass), []byte(u.Password)) == 1 {
				return u, nil
			}
		}
		return nil, errBadCredentials
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, errNoCredentials
	}
	tok, ok := cutPrefixFold(h, "Bearer ")
	if !ok {
		return nil, errBadCredentials
	}
	var found *User
	for i := range p.Users {
		u := &p.Users[i]
		if u.Token != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(u.Token)) == 1 {
			found = u
		}
	}
	if found == nil {
		return nil, errBadCredentials
	}
	return found, nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}

// changesState says whether a request may change what the listener keeps.
func changesState(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// ReadOnly is the Need of a listener where only GET, HEAD and OPTIONS are
// reads.
func ReadOnly(r *http.Request) Role {
	if changesState(r) {
		return RoleWrite
	}
	return RoleRead
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

// Flush passes flushes through (long polls stream).
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// TLSFiles are a listener's TLS settings: a PEM certificate and key, and
// optionally the PEM CA bundle client certificates must chain to (mutual
// TLS).
type TLSFiles struct {
	Cert, Key, ClientCA string
}

// Config loads the files; nil without a certificate.
func (f TLSFiles) Config() (*tls.Config, error) {
	if f.Cert == "" {
		return nil, nil
	}
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate %s and key %s: %w", f.Cert, f.Key, err)
	}
	c := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	if f.ClientCA != "" {
		pem, err := os.ReadFile(f.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("load TLS client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("load TLS client CA %s: no PEM certificate in it", f.ClientCA)
		}
		c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return c, nil
}

// Loopback says whether addr (host:port, host may be empty) listens on a
// loopback address only. An empty host or a name that is not localhost
// listens wider.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
