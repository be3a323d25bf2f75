package testdb

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// S3Server is a versitygw of a test's own (the binary
// scripts/test-services.sh built), over a directory of its own, which the
// test may stop and start again (an outage) without touching the shared
// server other packages use.
type S3Server struct {
	t        testing.TB
	bin, dir string
	addr     string
	cmd      *exec.Cmd
	done     chan struct{}
}

// NewS3Server starts a private versitygw with the root key pair of the
// shared one, on a free port; it is stopped when the test ends. The test
// is skipped when test-services.sh has not built the binary.
func NewS3Server(t testing.TB) *S3Server {
	t.Helper()
	bins, _ := filepath.Glob("/usr/local/lib/eddy-test/versitygw-*")
	if len(bins) == 0 {
		t.Skip("versitygw is not built (run scripts/test-services.sh)")
	}
	sort.Strings(bins)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := &S3Server{t: t, bin: bins[len(bins)-1], dir: t.TempDir(), addr: addr}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Endpoint is the server's address for the SDK.
func (s *S3Server) Endpoint() string { return "http://" + s.addr }

// Start starts the server (again) and waits until it answers.
func (s *S3Server) Start() {
	s.t.Helper()
	if s.cmd != nil {
		return
	}
	logf, err := os.OpenFile(filepath.Join(s.dir, "..", "versitygw.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	data := filepath.Join(s.dir, "data")
	os.MkdirAll(data, 0o755)
	cmd := exec.Command(s.bin, "--port", s.addr, "--access", S3AccessKey, "--secret", S3SecretKey, "--region", S3Region, "--quiet", "posix", data)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.t.Fatalf("start versitygw: %v", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(s.done) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(s.Endpoint() + "/")
		if err == nil {
			resp.Body.Close()
			return
		}
		select {
		case <-s.done:
			s.t.Fatalf("versitygw at %s exited at start (log: %s)", s.addr, filepath.Join(s.dir, "..", "versitygw.log"))
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("versitygw at %s does not answer: %v", s.addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills the server, as a crash or an outage does.
func (s *S3Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Client is an SDK client of the server.
func (s *S3Server) Client() *s3.Client {
	return newS3Client(s.Endpoint(), S3SecretKey)
}

// Bucket makes a bucket on the server.
func (s *S3Server) Bucket(name string) string {
	s.t.Helper()
	if _, err := s.Client().CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		s.t.Fatalf("create bucket %s at %s: %v", name, s.addr, err)
	}
	return name
}
