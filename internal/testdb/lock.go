package testdb

import (
	"os"
	"sync/atomic"
	"syscall"
	"testing"
)

// A Lock keeps tests of different packages (which go test runs in
// parallel, as separate processes) apart on a server they share: a test
// that uses the server holds it shared, and a test that restarts it or
// changes it for everyone holds it alone, so that no test's connection
// dies under it. It is an flock(2) on Path. Locks are taken in one order
// (the server's before its binlog's), so two processes never wait for
// each other.
//
// Within a process (whose tests run one at a time) a hold is counted: a
// shared hold under an exclusive one, or under another shared one, takes
// no second flock, which could wait behind another process's exclusive
// request for a lock this process holds already.
type Lock struct {
	Path              string
	exclusive, shared atomic.Int32
}

// Share holds l shared until the test ends.
func (l *Lock) Share(t testing.TB) {
	t.Helper()
	if l.exclusive.Load() == 0 && l.shared.Load() == 0 {
		l.flock(t, syscall.LOCK_SH)
	}
	l.shared.Add(1)
	t.Cleanup(func() { l.shared.Add(-1) })
}

// Alone holds l exclusively until the test ends. The test must ask before
// it (or a test it runs under) holds l shared: the two would wait for each
// other.
func (l *Lock) Alone(t testing.TB) {
	t.Helper()
	if l.exclusive.Load() == 0 {
		if l.shared.Load() > 0 {
			t.Fatalf("%s is held shared by this test already: hold it alone first", l.Path)
		}
		l.flock(t, syscall.LOCK_EX)
	}
	l.exclusive.Add(1)
	t.Cleanup(func() { l.exclusive.Add(-1) })
}

func (l *Lock) flock(t testing.TB, how int) {
	t.Helper()
	f, err := os.OpenFile(l.Path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
}
