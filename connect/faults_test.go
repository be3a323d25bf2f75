package connect_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-cdc/eddy/admin"
	"github.com/eddy-cdc/eddy/connect"
	elog "github.com/eddy-cdc/eddy/log"
	"github.com/eddy-cdc/eddy/registry"
)

// A segment fsync that fails under a running source: the source task fails
// at once (no retry can help a partition that refuses appends), its status
// names the partition and the error, /readyz answers 503 saying the same,
// and the metric marks the partition; the connector of the healthy topic
// goes on.
func TestLogDiskFaultIsVisible(t *testing.T) {
	dir := t.TempDir()
	h := start(t, dir, `
connectors:
  - name: gen
    plugin: datagen-source
    config: {rate: 500, tables: [orders], topic_prefix: t}
  - name: other
    plugin: datagen-source
    config: {rate: 500, tables: [orders], topic_prefix: u}
  - name: out
    plugin: file-sink
    topics: [u.public.orders]
    config: {path: `+filepath.Join(dir, "out.jsonl")+`}
`)
	srv := httptest.NewServer(admin.NewServer(admin.NewLocal(h.log), nil, admin.WithWorker(h.w, h.cat)))
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor(t, "records in the log", 30*time.Second, func() bool {
		tp, err := h.log.Topic("t.public.orders")
		return err == nil && tp.Stats()[0].HighWatermark > 20
	})
	if code, body := get("/readyz"); code != 200 {
		t.Fatalf("/readyz before the fault: %d %s", code, body)
	}
	h.setFault(func(op elog.FileOp, path string) error {
		if op == elog.OpSync && strings.Contains(path, filepath.Join("t.public.orders", "0")) {
			return syscall.EIO
		}
		return nil
	})
	waitFor(t, "the source to fail", 30*time.Second, func() bool {
		s, _ := taskState(t, h.w, "gen")
		return s == connect.StateFailed
	})
	_, trace := taskState(t, h.w, "gen")
	for _, want := range []string{"t.public.orders/0", "input/output error", "refuses appends until the log is reopened"} {
		if !strings.Contains(trace, want) {
			t.Fatalf("failed task's trace %q lacks %q", trace, want)
		}
	}
	code, body := get("/readyz")
	if code != 503 || !strings.Contains(body, "t.public.orders/0") || !strings.Contains(body, "input/output error") {
		t.Fatalf("/readyz after the fault: %d %s", code, body)
	}
	if strings.Contains(body, "u.public.orders") {
		t.Fatalf("/readyz blames a healthy partition: %s", body)
	}
	_, metrics := get("/metrics")
	if !strings.Contains(metrics, `eddy_log_partition_failed{partition="0",topic="t.public.orders"} 1`) ||
		!strings.Contains(metrics, `eddy_log_partition_failed{partition="0",topic="u.public.orders"} 0`) {
		t.Fatalf("/metrics lacks the failed partition gauge")
	}
	for _, name := range []string{"other", "out"} {
		if s, _ := taskState(t, h.w, name); s != connect.StateRunning {
			t.Fatalf("%s, of the healthy topic, is %s", name, s)
		}
	}

	// The groups' offsets partition fails: the sink cannot commit, and
	// says so.
	h.setFault(func(op elog.FileOp, path string) error {
		if op == elog.OpSync && strings.Contains(path, elog.OffsetsTopic) {
			return syscall.EIO
		}
		return nil
	})
	waitFor(t, "the sink to fail", 30*time.Second, func() bool {
		s, _ := taskState(t, h.w, "out")
		return s == connect.StateFailed
	})
	if _, trace := taskState(t, h.w, "out"); !strings.Contains(trace, "commit") || !strings.Contains(trace, elog.OffsetsTopic) || !strings.Contains(trace, "input/output error") {
		t.Fatalf("failed sink's trace: %s", trace)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, elog.OffsetsTopic) {
		t.Fatalf("/readyz after the offsets fault: %d %s", code, body)
	}
}

// A registry frozen in READONLY mode refuses a source's new schema: that
// is the registry's state, not a record's fault, so under tolerance all
// nothing is dead-lettered; the task says why while it retries, and once
// the registry is writable again every event arrives.
func TestRegistryRefusalDeadLettersNothing(t *testing.T) {
	dir := t.TempDir()
	l, err := elog.Open(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.Open(context.Background(), l)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.SetMode(context.Background(), "", registry.ReadOnly); err != nil {
		t.Fatal(err)
	}
	l.Close()
	h := start(t, dir, `
connectors:
  - name: gen
    plugin: datagen-source
    config: {rate: 0, max_events: 50, tables: [orders], topic_prefix: t}
    errors: {tolerance: all, dead_letter_topic: gen.dlq, retry_timeout: 5m, retry_max_delay: 200ms}
`)
	waitFor(t, "the task to say why it retries", 30*time.Second, func() bool {
		_, trace := taskState(t, h.w, "gen")
		return strings.Contains(trace, "schema registration failed") && strings.Contains(trace, "read-only")
	})
	if _, err := h.log.Topic("gen.dlq"); err == nil {
		t.Fatal("records were dead-lettered for the registry's mode")
	}
	if err := h.reg.SetMode(context.Background(), "", registry.ReadWrite); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every event", 60*time.Second, func() bool {
		o, _ := h.w.Offsets("gen")
		return lastEvent(o) == 49
	})
	if _, err := h.log.Topic("gen.dlq"); err == nil {
		t.Fatal("records were dead-lettered")
	}
}
