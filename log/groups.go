package log

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// OffsetsTopic is the compacted internal topic that holds committed
// offsets, in offsetsPartitions partitions (a group's commits go to
// murmur2(group) % offsetsPartitions).
const (
	OffsetsTopic      = "__consumer_offsets"
	offsetsPartitions = 8
)

// Group states, as Kafka names them.
const (
	GroupEmpty     = "Empty"
	GroupRebalance = "PreparingRebalance"
	GroupStable    = "Stable"
)

// Errors of the group protocol; a member that gets ErrRebalanceInProgress
// must call Join again (with its member id) to get its new assignment.
var (
	ErrUnknownMember       = errors.New("unknown member")
	ErrRebalanceInProgress = errors.New("rebalance in progress")
	ErrIllegalGeneration   = errors.New("illegal generation")
	ErrNotAssigned         = errors.New("partition not assigned to member")
	ErrGroupActive         = errors.New("group has active members")
	ErrUnknownGroup        = errors.New("unknown group")
)

// TopicPartition names one partition of a topic.
type TopicPartition struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
}

func (tp TopicPartition) String() string { return fmt.Sprintf("%s/%d", tp.Topic, tp.Partition) }

// OffsetCommit is a group's committed position in one partition: the offset
// of the next record to consume.
type OffsetCommit struct {
	Offset    int64     `json:"offset"`
	Metadata  string    `json:"metadata,omitempty"`
	Timestamp time.Time `json:"timestamp"`
}

// JoinRequest asks to join (or rejoin) a group.
type JoinRequest struct {
	MemberID       string        // empty on first join
	ClientID       string        // prefix of the member id, for people reading it
	Topics         []string      // subscription
	SessionTimeout time.Duration // default 10s
}

// Assignment is what a member holds after a rebalance.
type Assignment struct {
	MemberID   string           `json:"member_id"`
	Generation int              `json:"generation"`
	Partitions []TopicPartition `json:"partitions"`
}

// GroupCoordinator runs consumer groups over the log: membership with
// eager rebalancing, and committed offsets stored in the compacted topic
// __consumer_offsets and rebuilt from it on open.
//
// Rebalance protocol: any join, leave or expiry moves the group to
// PreparingRebalance. Every member must then call Join again (heartbeats
// answer ErrRebalanceInProgress); rejoining revokes its partitions. Only
// when every remaining member has rejoined — or been expired — does the
// group compute a new assignment, bump the generation and become Stable, so
// no partition is ever held by two members of one generation at once.
type GroupCoordinator struct {
	log     *Log
	offsets *Topic
	clock   func() time.Time

	mu        sync.Mutex
	groups    map[string]*group
	committed map[string]map[TopicPartition]OffsetCommit

	stop chan struct{}
	wg   sync.WaitGroup
}

type group struct {
	name       string
	state      string
	generation int
	members    map[string]*member
	rebalStart time.Time
	settled    chan struct{} // closed when the current rebalance completes
}

type member struct {
	id             string
	topics         []string
	sessionTimeout time.Duration
	lastSeen       time.Time
	joined         bool // has rejoined the rebalance in progress
	assignment     []TopicPartition
	assignedGen    int
}

type offsetKey struct {
	Group     string `json:"group"`
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
}

// encodeCommit is a commit's key and value in __consumer_offsets
// (testdata/golden/consumer_offsets.*.json are the contract).
func encodeCommit(k offsetKey, v OffsetCommit) (key, value []byte) {
	key, _ = json.Marshal(k)
	value, _ = json.Marshal(v)
	return key, value
}

func newGroupCoordinator(l *Log) (*GroupCoordinator, error) {
	t, err := l.EnsureTopic(OffsetsTopic, TopicConfig{
		Partitions: offsetsPartitions, Cleanup: CleanupCompact, SegmentBytes: 100 << 20,
		Internal: true, Description: "committed offsets of consumer groups",
	})
	if err != nil {
		return nil, fmt.Errorf("open consumer groups: %w", err)
	}
	c := &GroupCoordinator{log: l, offsets: t, clock: l.opts.clock, groups: map[string]*group{},
		committed: map[string]map[TopicPartition]OffsetCommit{}, stop: make(chan struct{})}
	if err := c.replay(); err != nil {
		return nil, err
	}
	c.wg.Add(1)
	go c.reap()
	return c, nil
}

// replay rebuilds the committed offsets from __consumer_offsets.
func (c *GroupCoordinator) replay() error {
	for i := 0; i < c.offsets.Partitions(); i++ {
		p, _ := c.offsets.Partition(i)
		var recs []Record
		for off := p.LogStartOffset(); off < p.HighWatermark(); {
			res, err := p.Fetch(off, 4<<20)
			if err != nil {
				return fmt.Errorf("replay %s: %w", p, err)
			}
			if len(res.Data) == 0 {
				break
			}
			if recs, err = DecodeBatches(recs[:0], res.Data, off); err != nil {
				return fmt.Errorf("replay %s: %w", p, err)
			}
			for _, r := range recs {
				var k offsetKey
				if err := json.Unmarshal(r.Key, &k); err != nil {
					return fmt.Errorf("replay %s at %d: bad key: %w", p, r.Offset, err)
				}
				tp := TopicPartition{k.Topic, k.Partition}
				if r.Value == nil {
					delete(c.committed[k.Group], tp)
					continue
				}
				var v OffsetCommit
				if err := json.Unmarshal(r.Value, &v); err != nil {
					return fmt.Errorf("replay %s at %d: bad value: %w", p, r.Offset, err)
				}
				c.setCommitted(k.Group, tp, v)
			}
			off = res.NextOffset
		}
	}
	return nil
}

func (c *GroupCoordinator) setCommitted(g string, tp TopicPartition, v OffsetCommit) {
	m := c.committed[g]
	if m == nil {
		m = map[TopicPartition]OffsetCommit{}
		c.committed[g] = m
	}
	m[tp] = v
}

func newMemberID(clientID string) string {
	var b [8]byte
	rand.Read(b[:])
	if clientID == "" {
		clientID = "member"
	}
	return clientID + "-" + hex.EncodeToString(b[:])
}

func (c *GroupCoordinator) group(name string) *group {
	g := c.groups[name]
	if g == nil {
		g = &group{name: name, state: GroupEmpty, members: map[string]*member{}, settled: make(chan struct{})}
		c.groups[name] = g
	}
	return g
}

// Join adds a member to a group, or rejoins one after a rebalance began, and
// blocks until the group is stable again. It returns the member's share.
func (c *GroupCoordinator) Join(ctx context.Context, groupName string, req JoinRequest) (Assignment, error) {
	if groupName == "" {
		return Assignment{}, fmt.Errorf("join: %w: empty group name", ErrUnknownGroup)
	}
	if req.SessionTimeout <= 0 {
		req.SessionTimeout = 10 * time.Second
	}
	c.mu.Lock()
	g := c.group(groupName)
	m, ok := g.members[req.MemberID]
	if req.MemberID == "" {
		m = &member{id: newMemberID(req.ClientID)}
		g.members[m.id] = m
	} else if !ok {
		c.mu.Unlock()
		return Assignment{}, fmt.Errorf("join %s: %w: %s", groupName, ErrUnknownMember, req.MemberID)
	}
	m.topics = append([]string(nil), req.Topics...)
	m.sessionTimeout = req.SessionTimeout
	m.lastSeen = c.clock()
	if g.state != GroupRebalance {
		c.startRebalance(g)
	}
	m.joined, m.assignment = true, nil
	c.maybeSettle(g)
	for {
		if g.members[m.id] != m {
			c.mu.Unlock()
			return Assignment{}, fmt.Errorf("join %s: %w: %s expired while joining", groupName, ErrUnknownMember, m.id)
		}
		if g.state == GroupStable && m.assignedGen == g.generation {
			a := Assignment{MemberID: m.id, Generation: g.generation, Partitions: append([]TopicPartition(nil), m.assignment...)}
			c.mu.Unlock()
			return a, nil
		}
		if !m.joined { // another rebalance began while we waited: we are in it
			m.joined, m.assignment = true, nil
			c.maybeSettle(g)
			continue
		}
		settled := g.settled
		c.mu.Unlock()
		select {
		case <-settled:
		case <-ctx.Done():
			c.Leave(groupName, m.id)
			return Assignment{}, ctx.Err()
		case <-c.stop:
			return Assignment{}, ErrClosed
		}
		c.mu.Lock()
		m.lastSeen = c.clock()
	}
}

func (c *GroupCoordinator) startRebalance(g *group) {
	g.state = GroupRebalance
	g.rebalStart = c.clock()
	for _, m := range g.members {
		m.joined = false
	}
}

// maybeSettle completes the rebalance once every member has rejoined.
func (c *GroupCoordinator) maybeSettle(g *group) {
	if g.state != GroupRebalance {
		return
	}
	for _, m := range g.members {
		if !m.joined {
			return
		}
	}
	g.generation++
	if len(g.members) == 0 {
		g.state = GroupEmpty
	} else {
		g.state = GroupStable
		c.assign(g)
	}
	close(g.settled)
	g.settled = make(chan struct{})
}

// assign is Kafka's range assignor: per topic, members in id order take
// contiguous ranges, the first ones one partition more when it does not
// divide evenly.
func (c *GroupCoordinator) assign(g *group) {
	byTopic := map[string][]*member{}
	for _, m := range g.members {
		m.assignment, m.assignedGen = nil, g.generation
		for _, t := range m.topics {
			byTopic[t] = append(byTopic[t], m)
		}
	}
	for topic, ms := range byTopic {
		t, err := c.log.Topic(topic)
		if err != nil {
			continue // subscribed to a topic that does not exist (yet)
		}
		sort.Slice(ms, func(i, j int) bool { return ms[i].id < ms[j].id })
		n := t.Partitions()
		per, extra := n/len(ms), n%len(ms)
		next := 0
		for i, m := range ms {
			k := per
			if i < extra {
				k++
			}
			for j := 0; j < k; j++ {
				m.assignment = append(m.assignment, TopicPartition{topic, next})
				next++
			}
		}
	}
	for _, m := range g.members {
		sort.Slice(m.assignment, func(i, j int) bool {
			a, b := m.assignment[i], m.assignment[j]
			return a.Topic < b.Topic || a.Topic == b.Topic && a.Partition < b.Partition
		})
	}
}

// Heartbeat keeps a member's session alive. It answers
// ErrRebalanceInProgress when the member must rejoin.
func (c *GroupCoordinator) Heartbeat(groupName, memberID string, generation int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groups[groupName]
	if g == nil || g.members[memberID] == nil {
		return fmt.Errorf("heartbeat %s: %w: %s", groupName, ErrUnknownMember, memberID)
	}
	g.members[memberID].lastSeen = c.clock()
	if g.state == GroupRebalance {
		return fmt.Errorf("heartbeat %s: %w", groupName, ErrRebalanceInProgress)
	}
	if generation != g.generation {
		return fmt.Errorf("heartbeat %s: %w: %d, the group is at %d", groupName, ErrIllegalGeneration, generation, g.generation)
	}
	return nil
}

// Leave removes a member; the others rebalance.
func (c *GroupCoordinator) Leave(groupName, memberID string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groups[groupName]
	if g == nil || g.members[memberID] == nil {
		return fmt.Errorf("leave %s: %w: %s", groupName, ErrUnknownMember, memberID)
	}
	c.removeMember(g, memberID)
	return nil
}

func (c *GroupCoordinator) removeMember(g *group, id string) {
	delete(g.members, id)
	if g.state != GroupRebalance {
		c.startRebalance(g)
	}
	c.maybeSettle(g)
}

// reap expires members whose session lapsed, and members that did not
// rejoin a rebalance within their session timeout.
func (c *GroupCoordinator) reap() {
	defer c.wg.Done()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		c.mu.Lock()
		now := c.clock()
		for _, g := range c.groups {
			for id, m := range g.members {
				lapsed := now.Sub(m.lastSeen) > m.sessionTimeout
				stuck := g.state == GroupRebalance && !m.joined && now.Sub(g.rebalStart) > m.sessionTimeout
				if lapsed || stuck {
					c.log.opts.logger.Info("consumer group member expired", "group", g.name, "member", id, "stuck_in_rebalance", stuck && !lapsed)
					c.removeMember(g, id)
				}
			}
		}
		c.mu.Unlock()
	}
}

// Commit stores offsets for a group, durably, before returning. A member
// commits with its id and generation, and only partitions it holds; with an
// empty member id and generation -1 it is a standalone commit, allowed only
// while the group has no members (as a Kafka admin client's).
func (c *GroupCoordinator) Commit(ctx context.Context, groupName, memberID string, generation int, offsets map[TopicPartition]int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.group(groupName)
	if memberID == "" {
		if len(g.members) > 0 {
			return fmt.Errorf("commit %s: %w: standalone commits need an empty group", groupName, ErrGroupActive)
		}
	} else {
		m := g.members[memberID]
		if m == nil {
			return fmt.Errorf("commit %s: %w: %s", groupName, ErrUnknownMember, memberID)
		}
		m.lastSeen = c.clock()
		if m.assignment == nil && g.state == GroupRebalance {
			return fmt.Errorf("commit %s: %w", groupName, ErrRebalanceInProgress)
		}
		if generation != m.assignedGen {
			return fmt.Errorf("commit %s: %w: %d, the member holds %d", groupName, ErrIllegalGeneration, generation, m.assignedGen)
		}
		for tp := range offsets {
			if !holds(m.assignment, tp) {
				return fmt.Errorf("commit %s: %w: %s", groupName, ErrNotAssigned, tp)
			}
		}
	}
	return c.storeLocked(ctx, groupName, offsets)
}

func holds(a []TopicPartition, tp TopicPartition) bool {
	for _, x := range a {
		if x == tp {
			return true
		}
	}
	return false
}

// storeLocked appends the commits to __consumer_offsets and, once durable, makes
// them visible. Called with mu held.
func (c *GroupCoordinator) storeLocked(ctx context.Context, groupName string, offsets map[TopicPartition]int64) error {
	if len(offsets) == 0 {
		return nil
	}
	now := c.clock()
	recs := make([]Record, 0, len(offsets))
	vals := make(map[TopicPartition]OffsetCommit, len(offsets))
	for tp, off := range offsets {
		if off < 0 {
			return fmt.Errorf("commit %s: offset %d for %s is negative", groupName, off, tp)
		}
		v := OffsetCommit{Offset: off, Timestamp: now.UTC()}
		k, vb := encodeCommit(offsetKey{groupName, tp.Topic, tp.Partition}, v)
		recs = append(recs, Record{Key: k, Value: vb, Timestamp: now})
		vals[tp] = v
	}
	p, _ := c.offsets.Partition(PartitionForKey([]byte(groupName), c.offsets.Partitions()))
	if _, _, err := p.Append(ctx, recs); err != nil {
		return fmt.Errorf("commit %s: %w", groupName, err)
	}
	for tp, v := range vals {
		c.setCommitted(groupName, tp, v)
	}
	return nil
}

// Committed returns a group's committed offsets.
func (c *GroupCoordinator) Committed(groupName string) map[TopicPartition]OffsetCommit {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[TopicPartition]OffsetCommit, len(c.committed[groupName]))
	for tp, v := range c.committed[groupName] {
		out[tp] = v
	}
	return out
}

// ResetOffsets moves a group's committed offsets for every partition of
// topic to the position spec names. The group must have no members.
func (c *GroupCoordinator) ResetOffsets(ctx context.Context, groupName, topic string, spec OffsetSpec) (map[TopicPartition]int64, error) {
	t, err := c.log.Topic(topic)
	if err != nil {
		return nil, fmt.Errorf("reset %s: %w", groupName, err)
	}
	offsets := map[TopicPartition]int64{}
	for i := 0; i < t.Partitions(); i++ {
		p, _ := t.Partition(i)
		off, err := p.Resolve(spec)
		if err != nil {
			return nil, fmt.Errorf("reset %s: %w", groupName, err)
		}
		offsets[TopicPartition{topic, i}] = off
	}
	if err := c.Commit(ctx, groupName, "", -1, offsets); err != nil {
		return nil, err
	}
	return offsets, nil
}

// MemberDescription is one member as Describe reports it.
type MemberDescription struct {
	MemberID   string           `json:"member_id"`
	Topics     []string         `json:"topics"`
	Assignment []TopicPartition `json:"assignment"`
}

// PartitionLag is a group's position in one partition.
type PartitionLag struct {
	Topic         string `json:"topic"`
	Partition     int    `json:"partition"`
	Committed     int64  `json:"committed"`
	HighWatermark int64  `json:"high_watermark"`
	Lag           int64  `json:"lag"`
}

// GroupDescription is a group's state, members and lag.
type GroupDescription struct {
	Group      string              `json:"group"`
	State      string              `json:"state"`
	Generation int                 `json:"generation"`
	Members    []MemberDescription `json:"members"`
	Offsets    []PartitionLag      `json:"offsets"`
}

// Describe reports a group; lag is high watermark minus committed offset.
func (c *GroupCoordinator) Describe(groupName string) (GroupDescription, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g, committed := c.groups[groupName], c.committed[groupName]
	if (g == nil || len(g.members) == 0) && len(committed) == 0 {
		return GroupDescription{}, fmt.Errorf("describe: %w: %s", ErrUnknownGroup, groupName)
	}
	d := GroupDescription{Group: groupName, State: GroupEmpty, Members: []MemberDescription{}, Offsets: []PartitionLag{}}
	if g != nil {
		d.State, d.Generation = g.state, g.generation
		for _, m := range g.members {
			d.Members = append(d.Members, MemberDescription{m.id, m.topics, m.assignment})
		}
	}
	sort.Slice(d.Members, func(i, j int) bool { return d.Members[i].MemberID < d.Members[j].MemberID })
	for tp, v := range committed {
		pl := PartitionLag{Topic: tp.Topic, Partition: tp.Partition, Committed: v.Offset, HighWatermark: -1, Lag: -1}
		if t, err := c.log.Topic(tp.Topic); err == nil {
			if p, err := t.Partition(tp.Partition); err == nil {
				pl.HighWatermark = p.HighWatermark()
				pl.Lag = max(pl.HighWatermark-v.Offset, 0)
			}
		}
		d.Offsets = append(d.Offsets, pl)
	}
	sort.Slice(d.Offsets, func(i, j int) bool {
		a, b := d.Offsets[i], d.Offsets[j]
		return a.Topic < b.Topic || a.Topic == b.Topic && a.Partition < b.Partition
	})
	return d, nil
}

// List returns the groups that have members or committed offsets.
func (c *GroupCoordinator) List() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[string]bool{}
	for n, g := range c.groups {
		if len(g.members) > 0 {
			seen[n] = true
		}
	}
	for n, m := range c.committed {
		if len(m) > 0 {
			seen[n] = true
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (c *GroupCoordinator) close() {
	select {
	case <-c.stop:
		return
	default:
	}
	close(c.stop)
	c.wg.Wait()
}
