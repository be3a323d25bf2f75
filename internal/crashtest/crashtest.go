// Package crashtest runs a helper test of the current test binary as a
// child process and kills it with SIGKILL while it works, for the crash
// tests of Eddy's durable parts: the child prints a line for each thing it
// has had acknowledged, and the parent checks all of them after reopening.
package crashtest

import (
	"bufio"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Child is a helper process started by Start.
type Child struct {
	cmd     *exec.Cmd
	lines   chan string
	started chan struct{}
}

// Start runs the test named helper of this test binary with env added to
// the environment; the helper finds its work in env and prints a line per
// acknowledgement.
func Start(t testing.TB, helper string, env ...string) *Child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+helper+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr // the child's log shows with a failing test's output
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &Child{cmd: cmd, lines: make(chan string, 1<<20), started: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		first := true
		for sc.Scan() {
			c.lines <- sc.Text()
			if first {
				close(c.started)
				first = false
			}
		}
		close(c.lines)
	}()
	return c
}

// KillAfterFirstLine waits (up to 20s) for the child's first line, so every
// kill interrupts work in flight, lets it run for d more, kills it with
// SIGKILL and returns every line it printed.
func (c *Child) KillAfterFirstLine(t testing.TB, d time.Duration) []string {
	t.Helper()
	select {
	case <-c.started:
	case <-time.After(20 * time.Second):
		c.cmd.Process.Kill()
		c.cmd.Wait()
		t.Fatal("the crash-test child printed nothing in 20s")
	}
	time.Sleep(d)
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.cmd.Wait()
	var out []string
	for line := range c.lines {
		out = append(out, line)
	}
	return out
}

// Terminate sends SIGTERM, as a service manager stops a server, and waits
// up to timeout for the child to exit; it returns the exit code (-1 when
// the child had to be killed) and how long the exit took.
func (c *Child) Terminate(t testing.TB, timeout time.Duration) (int, time.Duration) {
	t.Helper()
	select { // the first line says the child is ready for signals
	case <-c.started:
	case <-time.After(20 * time.Second):
	}
	start := time.Now()
	c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		c.cmd.Process.Kill()
		<-done
		return -1, time.Since(start)
	}
	return c.cmd.ProcessState.ExitCode(), time.Since(start)
}
