package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/crashtest"
	"github.com/eddy-cdc/eddy/internal/datagencheck"
	elog "github.com/eddy-cdc/eddy/log"
)

const runCrashEnv = "EDDY_RUN_CRASH_CONFIG"

// TestRunCrashChild is `eddy run` in a child process of the crash tests.
func TestRunCrashChild(t *testing.T) {
	cfg := os.Getenv(runCrashEnv)
	if cfg == "" {
		t.Skip("the child of TestKillRunDuringPipeline")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM) // as main does
	defer stop()
	fmt.Println("starting")
	os.Exit(run(ctx, []string{"run", "-c", cfg}, strings.NewReader(""), io.Discard, os.Stderr))
}

func pipelineConfig(t *testing.T, dir string, events int) (string, connect.Params) {
	t.Helper()
	path := filepath.Join(dir, "eddy.yaml")
	text := fmt.Sprintf(`data_dir: %s
api: {listen: "127.0.0.1:0"}
registry: {listen: "127.0.0.1:0"}
topics:
  - {name: k.public.orders, partitions: 3}
  - {name: k.public.customers, partitions: 2}
connectors:
  - name: gen
    plugin: datagen-source
    config: {rate: 4000, max_events: %d, keys: 53, tables: [orders, customers], batch_size: 200, topic_prefix: k}
  - name: out
    plugin: file-sink
    topics: [k.public.orders, k.public.customers]
    config: {path: %s}
`, filepath.Join(dir, "data"), events, filepath.Join(dir, "out.jsonl"))
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := connect.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, cfg.Connectors[0].Params()
}

// Kill -9 `eddy run` at 20 random points of a datagen -> log -> file
// pipeline (3 and 2 partitions, Avro through the registry): after the
// restarts the file holds every generated event exactly once, in per-key
// order.
func TestKillRunDuringPipeline(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test")
	}
	dir := t.TempDir()
	const events = 12000
	cfg, params := pipelineConfig(t, dir, events)
	out := filepath.Join(dir, "out.jsonl")
	want, err := datagencheck.Expected(params, events)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, w := range want {
		total += len(w)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for round := range 20 {
		child := crashtest.Start(t, "TestRunCrashChild", runCrashEnv+"="+cfg)
		child.KillAfterFirstLine(t, time.Duration(50+rng.IntN(550))*time.Millisecond)
		// Whatever the file holds after a crash is a prefix of the truth:
		// nothing twice, per-key order kept.
		if _, _, err := datagencheck.Read(out); err != nil && !os.IsNotExist(err) {
			t.Fatalf("after kill %d: %v", round, err)
		}
	}
	child := crashtest.Start(t, "TestRunCrashChild", runCrashEnv+"="+cfg)
	deadline := time.Now().Add(60 * time.Second)
	for fileLines(out) < total && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	code, _ := child.Terminate(t, 30*time.Second)
	if code != 0 {
		t.Errorf("eddy run exited %d on SIGTERM", code)
	}
	if err := datagencheck.Verify(out, params, events); err != nil {
		t.Fatalf("%v\n%s", err, logPositions(t, filepath.Join(dir, "data")))
	}
}

// logPositions summarises which source positions the log holds, so a
// failure says whether the source or the sink lost a record.
func logPositions(t *testing.T, dataDir string) string {
	l, err := elog.Open(dataDir)
	if err != nil {
		return err.Error()
	}
	defer l.Close()
	var b strings.Builder
	for _, name := range []string{"k.public.orders", "k.public.customers"} {
		tp, err := l.Topic(name)
		if err != nil {
			continue
		}
		for i := range tp.Partitions() {
			p, _ := tp.Partition(i)
			seen := map[string]int{}
			var last uint64
			gaps := 0
			for off := int64(0); off < p.HighWatermark(); {
				res, err := p.Fetch(off, 1<<20)
				if err != nil {
					break
				}
				recs, _ := elog.DecodeBatches(nil, res.Data, off)
				for _, r := range recs {
					for _, h := range r.Headers {
						if h.Key == connect.HeaderPosition && len(h.Value) == 9 {
							seen[string(h.Value)]++
							seq := binary.BigEndian.Uint64(h.Value)
							if seq < last {
								gaps++
							}
							last = seq
						}
					}
				}
				off = res.NextOffset
			}
			dups := 0
			for _, n := range seen {
				if n > 1 {
					dups++
				}
			}
			fmt.Fprintf(&b, "%s/%d: %d records, %d positions twice, %d out of order\n", name, i, p.HighWatermark(), dups, gaps)
		}
	}
	return b.String()
}

// SIGTERM drains the tasks mid-stream, commits, and exits 0 promptly; a
// restart carries on without a gap or a duplicate.
func TestSigtermDrainsAndExitsZero(t *testing.T) {
	dir := t.TempDir()
	const events = 6000
	cfg, params := pipelineConfig(t, dir, events)
	out := filepath.Join(dir, "out.jsonl")
	child := crashtest.Start(t, "TestRunCrashChild", runCrashEnv+"="+cfg)
	deadline := time.Now().Add(20 * time.Second)
	for fileLines(out) < 500 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	code, took := child.Terminate(t, 30*time.Second)
	if code != 0 || took > 10*time.Second {
		t.Fatalf("SIGTERM: exit %d after %s", code, took)
	}
	if _, _, err := datagencheck.Read(out); err != nil {
		t.Fatal(err)
	}
	want, _ := datagencheck.Expected(params, events)
	total := 0
	for _, w := range want {
		total += len(w)
	}
	child = crashtest.Start(t, "TestRunCrashChild", runCrashEnv+"="+cfg)
	for fileLines(out) < total && time.Now().Before(deadline.Add(30*time.Second)) {
		time.Sleep(50 * time.Millisecond)
	}
	if code, _ := child.Terminate(t, 30*time.Second); code != 0 {
		t.Fatalf("second SIGTERM: exit %d", code)
	}
	if err := datagencheck.Verify(out, params, events); err != nil {
		t.Fatal(err)
	}
}

func fileLines(path string) int {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), "\n")
}
