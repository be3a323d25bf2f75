package log

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/eddy-cdc/eddy/internal/logbuf"
)

// Retention protection keeps what a reader still needs and reports the
// bytes it holds; near the bound it warns that the reader is about to
// lose records, and past it deletes them anyway, saying so.
func TestRetentionProtection(t *testing.T) {
	out := &logbuf.Buffer{}
	l := openTest(t, t.TempDir(), WithLogger(slog.New(slog.NewTextHandler(out, nil))))
	defer l.Close()
	p := part(t, createTopic(t, l, "t", TopicConfig{SegmentBytes: 1024, RetentionBytes: 1}), 0)
	keepFrom := int64(0)
	l.ProtectRetention(func(tp TopicPartition) (int64, bool) { return keepFrom, tp.Topic == "t" }, 20<<10)
	fill := func(n int) {
		for i := 0; i < n; i++ {
			appendValues(t, p, fmt.Sprintf("%04d-%s", i, strings.Repeat("x", 200)))
		}
	}
	apply := func() int {
		t.Helper()
		n, err := p.ApplyRetention()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	held := func() int64 { return p.Stats().RetentionHeldBytes }

	fill(20) // ~5 KiB: a quarter of the bound
	if n := apply(); n != 0 || p.LogStartOffset() != 0 {
		t.Fatalf("retention deleted %d segments a reader needs", n)
	}
	if held() == 0 {
		t.Fatal("no held bytes reported while retention holds segments back")
	}
	if logs := out.Take(); !strings.Contains(logs, "retention is holding segments a sink has not consumed") || strings.Contains(logs, "about to lose") {
		t.Fatalf("log while holding, far from the bound: %s", logs)
	}
	apply()
	if logs := out.Take(); logs != "" {
		t.Fatalf("the holding warning is repeated: %s", logs)
	}

	fill(50) // ~19 KiB in all: past 80% of the bound, not past it
	if st := p.Stats(); st.Bytes > 20<<10 {
		t.Fatalf("the test's fill went past the bound: %d bytes", st.Bytes)
	}
	if n := apply(); n != 0 {
		t.Fatalf("retention deleted %d segments below the bound", n)
	}
	if logs := out.Take(); !strings.Contains(logs, "a sink is about to lose records") {
		t.Fatalf("no warning near the bound: %s", logs)
	}

	fill(20) // past the bound: retention deletes anyway, and says so
	if n := apply(); n == 0 || p.LogStartOffset() == 0 {
		t.Fatal("retention kept everything past retention_protect_bytes")
	}
	if logs := out.Take(); !strings.Contains(logs, "retention deletes records a sink has not consumed") {
		t.Fatalf("no warning when retention deletes past the bound: %s", logs)
	}
	if held() != 0 {
		t.Fatalf("held bytes %d after retention deleted them", held())
	}

	// The reader catches up: retention goes as configured, quietly.
	keepFrom = p.HighWatermark()
	apply()
	if held() != 0 || p.LogStartOffset() < keepFrom-20 {
		t.Fatalf("after the reader caught up: held %d, log start %d of %d", held(), p.LogStartOffset(), keepFrom)
	}
}
