package connect_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eddy-cdc/eddy/connect"
	elog "github.com/eddy-cdc/eddy/log"
)

// genToRawSink: datagen (%d events) into three partitions, read by a raw
// sink with the connector lines given (errors:, say).
const genToRawSink = `
log: {partitions: 3}
connectors:
  - name: gen
    plugin: datagen-source
    config: {rate: 0, max_events: %d, keys: 500, tables: [orders], topic_prefix: d, batch_size: 100}
  - name: raw
    plugin: raw-sink
    topics: [d.public.orders]
    %s
`

// waitTopic returns datagen's topic once its partition 1 holds more than
// n records.
func waitTopic(t *testing.T, h *harness, n int64) *elog.Topic {
	t.Helper()
	var topic *elog.Topic
	waitFor(t, "the generator to get going", 30*time.Second, func() bool {
		var err error
		if topic, err = h.log.Topic("d.public.orders"); err != nil {
			return false
		}
		p, _ := topic.Partition(1)
		return p.HighWatermark() > n
	})
	return topic
}

// waitGenerated returns the records topic holds once datagen has written
// its n events and stopped (with deletes' tombstones, more than n).
func waitGenerated(t *testing.T, topic *elog.Topic, n int64) int64 {
	t.Helper()
	var total, last int64
	waitFor(t, "the generator to finish", 60*time.Second, func() bool {
		last, total = total, 0
		for i := range topic.Partitions() {
			p, _ := topic.Partition(i)
			total += p.HighWatermark()
		}
		time.Sleep(300 * time.Millisecond)
		return total >= n && total == last
	})
	return total
}

// A sink task fetches the next batch while the sink writes the one before.
// Over three partitions, with a raw sink (keys and values as Avro bytes)
// and a record that does not deserialize in the middle of one partition,
// every record arrives exactly once, in offset order per partition, and
// the bad one is dead-lettered with its offset.
func TestSinkFetchesAheadInOrder(t *testing.T) {
	dir := t.TempDir()
	const n = 6000
	h := start(t, dir, fmt.Sprintf(genToRawSink, n, "errors: {tolerance: all, dead_letter_topic: dlq}"))
	topic := waitTopic(t, h, 100)
	p1, _ := topic.Partition(1)
	// Magic byte 0 and a schema id the registry does not have.
	bad, _, err := p1.Append(context.Background(), []elog.Record{{Timestamp: time.Now(), Key: []byte{0, 0, 0, 0x7f, 0x7f, 2}, Value: []byte{0, 0, 0, 0x7f, 0x7f, 2}}})
	if err != nil {
		t.Fatal(err)
	}
	total := waitGenerated(t, topic, n)
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

// Rebalances while the task fetches ahead: another member joins the
// sink's group (taking partitions away) and leaves again, twice, during
// a backlog. Every record still reaches the sink, in offset order per
// partition (a batch written before a rebalance may come again, as in
// Kafka Connect), and the fetch ahead never reads a partition the task
// gave up (run with -race).
func TestSinkFetchAheadAcrossRebalances(t *testing.T) {
	dir := t.TempDir()
	const n = 20000
	h := start(t, dir, fmt.Sprintf(genToRawSink, n, "errors: {tolerance: none}"))
	g := h.log.Groups()
	for range 2 {
		waitFor(t, "the sink to get going", 30*time.Second, func() bool {
			h.mu.Lock()
			defer h.mu.Unlock()
			return len(h.sunk) > 0
		})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		a, err := g.Join(ctx, connect.GroupFor("raw"), elog.JoinRequest{ClientID: "intruder", Topics: []string{"d.public.orders"}, SessionTimeout: 10 * time.Second})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if len(a.Partitions) == 0 {
			t.Fatal("the intruder got no partition: there was no rebalance to speak of")
		}
		time.Sleep(50 * time.Millisecond)
		if err := g.Leave(connect.GroupFor("raw"), a.MemberID); err != nil {
			t.Fatal(err)
		}
	}
	topic, err := h.log.Topic("d.public.orders")
	if err != nil {
		t.Fatal(err)
	}
	total := waitGenerated(t, topic, n)
	seen := func() (int64, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		next := map[int]int64{}
		for _, r := range h.sunk {
			if r.Offset > next[r.Partition] {
				return 0, fmt.Errorf("partition %d: offset %d came before %d", r.Partition, r.Offset, next[r.Partition])
			}
			next[r.Partition] = max(next[r.Partition], r.Offset+1)
		}
		return next[0] + next[1] + next[2], nil
	}
	waitFor(t, "the sink to take every record", 60*time.Second, func() bool {
		got, err := seen()
		if err != nil {
			t.Fatal(err)
		}
		return got == total
	})
}

// A BatchingSink's linger: records reach the log 25 at a time, every 20
// ms, and the sink asks for batches of 50 with up to 3 s to fill them.
// Every Write but the tail holds at least 50 records, where the task
// would otherwise write each 25 as they come; and every record arrives
// once, in order. The records are written by the test, not a generator,
// so a busy machine cannot starve a batch.
func TestSinkLingersToFillABatch(t *testing.T) {
	dir := t.TempDir()
	h := start(t, dir, `
connectors:
  - name: raw
    plugin: raw-sink
    topics: [trickle]
    config: {fill: 50, linger: 3s}
`)
	var p *elog.Partition
	waitFor(t, "the sink's topic", 30*time.Second, func() bool {
		topic, err := h.log.Topic("trickle")
		if err != nil {
			return false
		}
		p, _ = topic.Partition(0)
		return true
	})
	const bursts, each = 12, 25
	for range bursts {
		if _, _, err := p.Append(context.Background(), make([]elog.Record, each)); err != nil { // tombstones without keys
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitFor(t, "the sink to take every record", 30*time.Second, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.sunk) >= bursts*each
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, r := range h.sunk {
		if r.Offset != int64(i) {
			t.Fatalf("record %d has offset %d", i, r.Offset)
		}
	}
	for i, w := range h.writes[:len(h.writes)-1] {
		if w < 50 {
			t.Fatalf("write %d of %d held %d records, want at least 50 (all: %v)", i, len(h.writes), w, h.writes)
		}
	}
}
