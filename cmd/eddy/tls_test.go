package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eddy-cdc/eddy/internal/logbuf"
)

// testCA is a certificate authority of the test's own.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  string // file
}

func newTestCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	path := filepath.Join(dir, name+".pem")
	os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	return &testCA{cert, key, path}
}

// issue writes a certificate for name (a server at 127.0.0.1, or a
// client) signed by the CA, and returns its certificate and key files.
func (ca *testCA) issue(t *testing.T, dir, name string, server bool) (string, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

// The registry over mutual TLS, with users: a client without a
// certificate, or with one another CA signed, does not get through the
// handshake; the CLI with the CA, its certificate and credentials does;
// with the certificate and no credentials it gets 401.
func TestRegistryMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	srvCert, srvKey := ca.issue(t, dir, "server", true)
	cliCert, cliKey := ca.issue(t, dir, "client", false)
	other := newTestCA(t, dir, "other")
	badCert, badKey := other.issue(t, dir, "stranger", false)
	regAddr := freeAddr(t)
	cfg := filepath.Join(dir, "eddy.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`data_dir: %s
api: {listen: %q}
registry:
  listen: %q
  tls_cert: %s
  tls_key: %s
  tls_client_ca: %s
  users:
    - {name: ci, password: ci-pw-s3cret, role: write}
`, filepath.Join(dir, "data"), freeAddr(t), regAddr, srvCert, srvKey, ca.pem)), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var errb logbuf.Buffer
	go func() { done <- run(ctx, []string{"run", "-c", cfg}, strings.NewReader(""), io.Discard, &errb) }()
	defer func() { cancel(); <-done }()

	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	get := func(certs ...tls.Certificate) (int, error) {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs}}}
		req, _ := http.NewRequest("GET", "https://"+regAddr+"/subjects", nil)
		req.SetBasicAuth("ci", "ci-pw-s3cret")
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	good, _ := tls.LoadX509KeyPair(cliCert, cliKey)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if code, err := get(good); err == nil && code == 200 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("no answer over mutual TLS: %d %v; server: %s", code, err, errb.String())
		}
	}
	if code, err := get(); err == nil {
		t.Fatalf("a client without a certificate got %d", code)
	}
	bad, _ := tls.LoadX509KeyPair(badCert, badKey)
	if code, err := get(bad); err == nil {
		t.Fatalf("a client with another CA's certificate got %d", code)
	}
	if resp, err := http.Get("http://" + regAddr + "/subjects"); err == nil && resp.StatusCode == 200 {
		t.Fatal("plain HTTP served on the TLS listener")
	}

	tlsFlags := []string{"--registry", "https://" + regAddr, "--ca-file", ca.pem, "--cert-file", cliCert, "--key-file", cliKey}
	schema := filepath.Join(dir, "s.avsc")
	os.WriteFile(schema, []byte(`{"type":"record","name":"r","fields":[{"name":"a","type":"long"}]}`), 0o644)
	if out := must(t, eddy(t, "", append([]string{"registry", "register", "r-value", schema, "--registry-user-info", "ci:ci-pw-s3cret"}, tlsFlags...)...)); !strings.Contains(out, "1") {
		t.Fatalf("register over mutual TLS: %s", out)
	}
	if r := eddy(t, "", append([]string{"registry", "subjects"}, tlsFlags...)...); r.code != 1 || !strings.Contains(r.stderr, "40101") {
		t.Fatalf("without credentials: %+v", r)
	}
	if r := eddy(t, "", "registry", "subjects", "--registry", "https://"+regAddr, "--registry-user-info", "ci:ci-pw-s3cret"); r.code != 1 || !strings.Contains(r.stderr, "certificate") {
		t.Fatalf("without the CA: %+v", r)
	}
	if strings.Contains(errb.String(), "s3cret") {
		t.Fatal("a secret reached the server log")
	}
}
