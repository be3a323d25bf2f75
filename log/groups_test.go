package log

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"
)

// member is a test consumer: it joins, and rejoins whenever told to.
type testMember struct {
	id  string
	gen int
	tps []TopicPartition
}

func join(t *testing.T, c *GroupCoordinator, m *testMember, wg *sync.WaitGroup) {
	t.Helper()
	wg.Add(1)
	go func() {
		defer wg.Done()
		a, err := c.Join(context.Background(), "g", JoinRequest{MemberID: m.id, ClientID: "test", Topics: []string{"t"}, SessionTimeout: time.Minute})
		if err != nil {
			t.Error(err)
			return
		}
		m.id, m.gen, m.tps = a.MemberID, a.Generation, a.Partitions
	}()
}

// rejoinAll has every member answer a rebalance the way a client does: a
// heartbeat says "rebalance in progress", so it joins again.
func rejoinAll(t *testing.T, c *GroupCoordinator, ms []*testMember, wg *sync.WaitGroup) {
	for _, m := range ms {
		if err := c.Heartbeat("g", m.id, m.gen); errors.Is(err, ErrRebalanceInProgress) {
			join(t, c, m, wg)
		} else if err != nil {
			t.Fatalf("heartbeat of %s: %v", m.id, err)
		}
	}
}

func checkSplit(t *testing.T, ms []*testMember, partitions int) {
	t.Helper()
	seen := map[int]string{}
	gen := ms[0].gen
	for _, m := range ms {
		if m.gen != gen {
			t.Fatalf("members at generations %d and %d", gen, m.gen)
		}
		if n := len(m.tps); n < partitions/len(ms) || n > partitions/len(ms)+1 {
			t.Fatalf("member %s holds %d of %d partitions among %d members", m.id, n, partitions, len(ms))
		}
		for _, tp := range m.tps {
			if other, dup := seen[tp.Partition]; dup {
				t.Fatalf("partition %d held by %s and %s", tp.Partition, other, m.id)
			}
			seen[tp.Partition] = m.id
		}
	}
	if len(seen) != partitions {
		t.Fatalf("%d of %d partitions assigned", len(seen), partitions)
	}
}

func TestGroupRebalance1to3to2(t *testing.T) {
	l := openTest(t, t.TempDir())
	defer l.Close()
	createTopic(t, l, "t", TopicConfig{Partitions: 6})
	c := l.Groups()
	var wg sync.WaitGroup

	a := &testMember{}
	join(t, c, a, &wg)
	wg.Wait()
	checkSplit(t, []*testMember{a}, 6)
	if err := c.Commit(context.Background(), "g", a.id, a.gen, map[TopicPartition]int64{{"t", 0}: 5}); err != nil {
		t.Fatal(err)
	}

	// 1 -> 3: the newcomers' joins block until a has rejoined.
	b, d := &testMember{}, &testMember{}
	join(t, c, b, &wg)
	join(t, c, d, &wg)
	time.Sleep(50 * time.Millisecond)
	// While the group prepares, a still holds its partitions and may commit
	// what it has processed before it rejoins (revoking them).
	if err := c.Commit(context.Background(), "g", a.id, a.gen, map[TopicPartition]int64{{"t", 1}: 7}); err != nil {
		t.Fatalf("commit during rebalance by the old owner: %v", err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		rejoinAll(t, c, []*testMember{a}, &wg)
		wg.Wait()
		if b.id != "" && d.id != "" && a.gen == b.gen && b.gen == d.gen {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("group did not settle with 3 members")
		}
	}
	three := []*testMember{a, b, d}
	checkSplit(t, three, 6)
	desc, err := c.Describe("g")
	if err != nil || desc.State != GroupStable || len(desc.Members) != 3 {
		t.Fatalf("describe: %+v %v", desc, err)
	}

	// A stale generation is fenced.
	if err := c.Commit(context.Background(), "g", a.id, a.gen-1, map[TopicPartition]int64{a.tps[0]: 1}); !errors.Is(err, ErrIllegalGeneration) {
		t.Fatalf("commit with an old generation: %v", err)
	}
	// A member commits only what it holds.
	notMine := TopicPartition{"t", -1}
	for p := 0; p < 6; p++ {
		if !holds(a.tps, TopicPartition{"t", p}) {
			notMine = TopicPartition{"t", p}
			break
		}
	}
	if err := c.Commit(context.Background(), "g", a.id, a.gen, map[TopicPartition]int64{notMine: 1}); !errors.Is(err, ErrNotAssigned) {
		t.Fatalf("commit of a partition not held: %v", err)
	}

	// 3 -> 2: d leaves; a and b rejoin and split all 6.
	if err := c.Leave("g", d.id); err != nil {
		t.Fatal(err)
	}
	rejoinAll(t, c, []*testMember{a, b}, &wg)
	wg.Wait()
	checkSplit(t, []*testMember{a, b}, 6)

	// Session expiry: b stops heartbeating and a ends up with everything.
	c.mu.Lock()
	c.groups["g"].members[b.id].sessionTimeout = 100 * time.Millisecond
	c.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := c.Heartbeat("g", a.id, a.gen)
		if errors.Is(err, ErrRebalanceInProgress) {
			join(t, c, a, &wg)
			wg.Wait()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("expired member was not removed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	checkSplit(t, []*testMember{a}, 6)
	if err := c.Heartbeat("g", b.id, b.gen); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("heartbeat of an expired member: %v", err)
	}
}

func TestCommittedOffsetsSurviveRestartAndReset(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	p := part(t, createTopic(t, l, "t", TopicConfig{Partitions: 2}), 0)
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	for i := 0; i < 10; i++ {
		p.Append(context.Background(), []Record{{Value: []byte("x"), Timestamp: base.Add(time.Duration(i) * time.Minute)}})
	}
	c := l.Groups()
	if err := c.Commit(context.Background(), "g", "", -1, map[TopicPartition]int64{{"t", 0}: 4, {"t", 1}: 0}); err != nil {
		t.Fatal(err)
	}
	if err := c.Commit(context.Background(), "g", "", -1, map[TopicPartition]int64{{"t", 0}: 6}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = openTest(t, dir)
	defer l.Close()
	c = l.Groups()
	if got := c.Committed("g")[TopicPartition{"t", 0}].Offset; got != 6 {
		t.Fatalf("committed after restart: %d, want 6", got)
	}
	d, err := c.Describe("g")
	if err != nil || len(d.Offsets) != 2 || d.Offsets[0].Lag != 4 || d.Offsets[1].Lag != 0 {
		t.Fatalf("describe: %+v %v", d, err)
	}
	for _, cse := range []struct {
		spec OffsetSpec
		want int64
	}{
		{OffsetSpec{Kind: "earliest"}, 0},
		{OffsetSpec{Kind: "latest"}, 10},
		{OffsetSpec{Kind: "offset", Offset: 3}, 3},
		{OffsetSpec{Kind: "offset", Offset: 99}, 10},
		{OffsetSpec{Kind: "time", Time: base.Add(5*time.Minute + time.Second)}, 6},
	} {
		res, err := c.ResetOffsets(context.Background(), "g", "t", cse.spec)
		if err != nil || res[TopicPartition{"t", 0}] != cse.want {
			t.Fatalf("reset to %s: %v %v, want %d", cse.spec, res, err, cse.want)
		}
	}
	// Reset refuses a group with members.
	var wg sync.WaitGroup
	m := &testMember{}
	join(t, c, m, &wg)
	wg.Wait()
	if _, err := c.ResetOffsets(context.Background(), "g", "t", OffsetSpec{Kind: "earliest"}); !errors.Is(err, ErrGroupActive) {
		t.Fatalf("reset of an active group: %v", err)
	}
	groups := c.List()
	sort.Strings(groups)
	if len(groups) != 1 || groups[0] != "g" {
		t.Fatalf("groups: %v", groups)
	}
}
