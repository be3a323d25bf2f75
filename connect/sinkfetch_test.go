package connect_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eddy-cdc/eddy/connect"
	elog "github.com/eddy-cdc/eddy/log"
)

// A sink task fetches the next batch while the sink writes the one before.
// Over three partitions, with a raw sink (keys and values as Avro bytes)
// and a record that does not deserialize in the middle of one partition,
// every record arrives exactly once, in offset order per partition, and
// the bad one is dead-lettered with its offset.
func TestSinkFetchesAheadInOrder(t *testing.T) {
	dir := t.TempDir()
	const n = 6000
	h := start(t, dir, fmt.Sprintf(`
log: {partitions: 3}
connectors:
  - name: gen
    plugin: datagen-source
    config: {rate: 0, max_events: %d, keys: 500, tables: [orders], topic_prefix: d, batch_size: 100}
  - name: raw
    plugin: raw-sink
    topics: [d.public.orders]
    errors: {tolerance: all, dead_letter_topic: dlq}
`, n))
	var topic *elog.Topic
	waitFor(t, "the generator to get going", 30*time.Second, func() bool {
		var err error
		if topic, err = h.log.Topic("d.public.orders"); err != nil {
			return false
		}
		p, _ := topic.Partition(1)
		return p.HighWatermark() > 100
	})
	p1, _ := topic.Partition(1)
	// Magic byte 0 and a schema id the registry does not have.
	bad, _, err := p1.Append(context.Background(), []elog.Record{{Timestamp: time.Now(), Key: []byte{0, 0, 0, 0x7f, 0x7f, 2}, Value: []byte{0, 0, 0, 0x7f, 0x7f, 2}}})
	if err != nil {
		t.Fatal(err)
	}
	var total, last int64
	waitFor(t, "the generator to finish", 60*time.Second, func() bool {
		last, total = total, 0
		for i := range 3 {
			p, _ := topic.Partition(i)
			total += p.HighWatermark()
		}
		time.Sleep(300 * time.Millisecond) // with deletes' tombstones, it writes more than n records
		return total > n && total == last
	})
	waitFor(t, "the sink to take every record", 60*time.Second, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return int64(len(h.sunk)) >= total-1
	})
	time.Sleep(200 * time.Millisecond) // anything more would be a duplicate
	h.mu.Lock()
	defer h.mu.Unlock()
	if int64(len(h.sunk)) != total-1 {
		t.Fatalf("the sink got %d records, want %d", len(h.sunk), total-1)
	}
	next := map[int]int64{}
	for _, r := range h.sunk {
		want := next[r.Partition]
		if r.Partition == 1 && want == bad {
			want++
		}
		if r.Offset != want {
			t.Fatalf("partition %d: got offset %d, want %d", r.Partition, r.Offset, want)
		}
		next[r.Partition] = r.Offset + 1
		if _, ok := r.Key.(map[string]any)["id"]; !ok {
			t.Fatalf("partition %d offset %d: key %v", r.Partition, r.Offset, r.Key)
		}
	}
	dt, err := h.log.Topic("dlq")
	if err != nil {
		t.Fatal(err)
	}
	var dead []elog.Record
	for i := range 3 { // the topic defaults apply to it too
		dp, _ := dt.Partition(i)
		res, _ := dp.Fetch(0, 1<<20)
		dead, _ = elog.DecodeBatches(dead, res.Data, 0)
	}
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dead))
	}
	hd := map[string]string{}
	for _, x := range dead[0].Headers {
		hd[x.Key] = string(x.Value)
	}
	if hd[connect.HeaderErrStage] != connect.StageDeserialize || hd[connect.HeaderErrOffset] != fmt.Sprint(bad) || hd[connect.HeaderErrPartition] != "1" {
		t.Fatalf("dead letter headers: %v", hd)
	}
}
