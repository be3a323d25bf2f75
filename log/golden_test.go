package log

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/eddy-cdc/eddy/internal/golden"
)

// topic.json is an upgrade contract: what a log wrote, a later Eddy reads
// back and writes identically.
func TestGoldenTopicMeta(t *testing.T) {
	m := topicMeta{Name: "shop.public.orders", Created: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), Config: TopicConfig{
		Partitions: 3, Cleanup: CleanupCompact, Retention: Duration(168 * time.Hour), RetentionBytes: 1 << 30,
		SegmentBytes: 64 << 20, SegmentAge: Duration(24 * time.Hour), DeleteRetention: Duration(time.Hour),
		Fsync: FsyncInterval, FlushInterval: Duration(time.Second), MaxRecordBytes: 8 << 20, MaxBatchBytes: 16 << 20,
		Compression: "zstd", IndexIntervalBytes: 4096, Internal: true, Description: "a topic of every setting",
	}}
	golden.Check(t, "topic.json", m.encode())
	back, err := decodeTopicMeta(golden.Read(t, "topic.json"))
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "topic.json", back.encode())
	if back != m {
		t.Fatalf("decoded %+v, want %+v", back, m)
	}
}

// A commit in __consumer_offsets, key and value.
func TestGoldenConsumerOffsets(t *testing.T) {
	k := offsetKey{Group: "connect-replica", Topic: "shop.public.orders", Partition: 2}
	v := OffsetCommit{Offset: 1234, Metadata: "m", Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	kb, vb := encodeCommit(k, v)
	golden.Check(t, "consumer_offsets.key.json", kb)
	golden.Check(t, "consumer_offsets.value.json", vb)
	var k2 offsetKey
	var v2 OffsetCommit
	if err := json.Unmarshal(golden.Read(t, "consumer_offsets.key.json"), &k2); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(golden.Read(t, "consumer_offsets.value.json"), &v2); err != nil {
		t.Fatal(err)
	}
	kb2, vb2 := encodeCommit(k2, v2)
	golden.Check(t, "consumer_offsets.key.json", kb2)
	golden.Check(t, "consumer_offsets.value.json", vb2)
}

// The sparse index files: entries of relative offset and position, and of
// timestamp and relative offset.
func TestGoldenIndexEntries(t *testing.T) {
	var idx []byte
	for _, e := range []indexEntry{{0, 0}, {17, 4096}, {40, 8200}} {
		idx = appendIndexEntry(idx, e)
	}
	golden.Check(t, "segment.index", idx)
	var tidx []byte
	for _, e := range []timeEntry{{1767322800000, 0}, {1767322801000, 17}} {
		tidx = appendTimeEntry(tidx, e)
	}
	golden.Check(t, "segment.timeindex", tidx)
}
