package file

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eddy-cdc/eddy/connect"
	elog "github.com/eddy-cdc/eddy/log"
)

func open(t *testing.T, path string) *Sink {
	t.Helper()
	cat, err := connect.BuiltinCatalog()
	if err != nil {
		t.Fatal(err)
	}
	p, err := connect.NewParams(cat.Plugin("file-sink"), map[string]any{"path": path, "include_headers": true})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(p, connect.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s.(*Sink)
}

func rec(topic string, partition int, offset int64, value any) connect.Record {
	return connect.Record{Topic: topic, Partition: partition, Offset: offset, Key: "k", Value: value,
		Timestamp: time.UnixMilli(1_700_000_000_000), Headers: []elog.Header{{Key: "h", Value: []byte("v")}}}
}

// The file is its own offset store: lines carry their positions, a torn
// last line is cut on open, and records already written are not written
// again.
func TestFileSinkResumesFromItsOwnLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "out.jsonl")
	ctx := context.Background()
	s := open(t, path)
	if err := s.Write(ctx, []connect.Record{rec("a", 0, 0, "x"), rec("a", 0, 1, map[string]any{"n": int64(1)}), rec("b", 2, 7, nil)}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"topic":"a","partition":0,"offset":2,"val`) // a crash mid-line
	f.Close()

	s = open(t, path)
	defer s.Close()
	off, _ := s.Offsets(ctx)
	if off[elog.TopicPartition{Topic: "a", Partition: 0}] != 2 || off[elog.TopicPartition{Topic: "b", Partition: 2}] != 8 || len(off) != 2 {
		t.Fatalf("offsets %v", off)
	}
	// A replay from offset 1 writes only what is new.
	if err := s.Write(ctx, []connect.Record{rec("a", 0, 1, "again"), rec("a", 0, 2, "y")}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	want := `{"topic":"a","partition":0,"offset":0,"timestamp":1700000000000,"key":"k","value":"x","headers":{"h":"v"}}
{"topic":"a","partition":0,"offset":1,"timestamp":1700000000000,"key":"k","value":{"n":1},"headers":{"h":"v"}}
{"topic":"b","partition":2,"offset":7,"timestamp":1700000000000,"key":"k","value":null,"headers":{"h":"v"}}
{"topic":"a","partition":0,"offset":2,"timestamp":1700000000000,"key":"k","value":"y","headers":{"h":"v"}}
`
	if string(b) != want {
		t.Fatalf("file:\n%s\nwant:\n%s", b, want)
	}
}

// A line that does not parse (someone edited the file) is an error
// naming where, not a silent restart from zero.
func TestFileSinkRefusesAForeignFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	os.WriteFile(path, []byte("not json\n"), 0o644)
	cat, _ := connect.BuiltinCatalog()
	p, _ := connect.NewParams(cat.Plugin("file-sink"), map[string]any{"path": path})
	s, _ := New(p, connect.Env{})
	if err := s.Open(context.Background()); err == nil || !strings.Contains(err.Error(), "line at byte 0") {
		t.Fatalf("open: %v", err)
	}
}
