package connect

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	elog "github.com/eddy-cdc/eddy/log"
)

// sinkSessionTimeout is how long the group waits for a silent sink task.
const sinkSessionTimeout = 30 * time.Second

// sinkFetchBytes is the most a sink task reads from a partition at a
// time: one sink write and one offset commit per fetch, so larger fetches
// mean fewer fsyncs per record. A sink that takes values as Avro bytes
// (RawValueSink) holds little more than the fetched bytes, so it fetches
// more at a time, and a sink that writes a transaction per batch pays its
// fixed costs less often.
//
// A task starts (and restarts after a rebalance) with firstFetchBytes,
// doubling the size with each fetch that brings records: the first
// records are written while the larger fetches after them are read, as
// TCP's slow start fills a pipe.
const (
	sinkFetchBytes    = 4 << 20
	rawSinkFetchBytes = 16 << 20
	firstFetchBytes   = 1 << 20
)

// GroupFor is the consumer group of a sink connector.
func GroupFor(connector string) string { return "connect-" + connector }

// runSink is one life of a sink task: it consumes its topics in the group
// connect-<name>, starting where the sink's own offset store says (for a
// sink that keeps one) or the group's committed offsets, else the
// earliest; it writes each fetched batch and commits the group's offsets
// only after the sink reports the records stored.
func (c *connector) runSink(stopCtx, workCtx context.Context) (progressed bool, err error) {
	factory := c.w.plugins.Sinks[c.spec.Plugin]
	if factory == nil {
		return false, permanent{fmt.Errorf("sink plugin %s has no implementation", c.spec.Plugin)}
	}
	sink, err := factory(c.spec.params, c.env())
	if err != nil {
		return false, permanent{fmt.Errorf("configure %s: %w", c.spec.Plugin, err)}
	}
	if err := sink.Open(stopCtx); err != nil {
		return false, fmt.Errorf("open sink: %w", err)
	}
	defer sink.Close()
	ts, err := c.transforms()
	if err != nil {
		return false, err
	}
	for _, t := range c.spec.Topics {
		if _, err := c.w.ensureTopic(t); err != nil {
			return false, permanent{fmt.Errorf("topic %s: %w", t, err)}
		}
	}
	s := &sinkSession{c: c, sink: sink, ts: ts, conv: NewConverter(c.w.serde, "avro"), group: GroupFor(c.spec.Name), fetchBytes: sinkFetchBytes}
	if bs, ok := sink.(BatchingSink); ok {
		s.fill, s.linger = bs.Batching()
		s.linger = min(s.linger, sinkSessionTimeout/3) // the group must hear from the task
	}
	if rs, ok := sink.(RawValueSink); ok && rs.RawValues() && len(ts) == 0 { // transforms edit the value model, so only without them
		s.raw, s.fetchBytes = true, rawSinkFetchBytes
	}
	if fs, ok := sink.(FetchSizer); ok && fs.FetchBytes() > 0 {
		s.fetchBytes = fs.FetchBytes()
	}
	defer s.leave()
	defer s.dropAhead()
	if err := s.join(stopCtx); err != nil {
		return false, err
	}
	lastBeat := time.Now()
	for {
		if err := c.gate(stopCtx, func() { s.heartbeat(stopCtx) }); err != nil {
			return progressed, err
		}
		if time.Since(lastBeat) > sinkSessionTimeout/10 {
			lastBeat = time.Now()
			if err := s.heartbeat(stopCtx); err != nil {
				return progressed, err
			}
		}
		got := false
		for i := range s.parts {
			n, err := s.poll(workCtx, i)
			if err != nil {
				return progressed, err
			}
			if n > 0 {
				got, progressed = true, true
			}
			if stopCtx.Err() != nil {
				return progressed, stopCtx.Err()
			}
		}
		if got {
			continue
		}
		if c.schedule != nil {
			return progressed, nil // caught up: the scheduled run is over
		}
		s.waitAny(stopCtx, time.Second)
	}
}

// sinkSession is a sink task's membership and positions.
type sinkSession struct {
	c          *connector
	sink       Sink
	ts         []Transform
	conv       *Converter
	group      string
	raw        bool          // values stay Avro bytes (RawValueSink)
	fill       int           // records a batch should hold (BatchingSink)
	linger     time.Duration // how long to wait for them
	fetchBytes int           // the most read from a partition at a time
	ramp       int           // the size of the next fetch, up to fetchBytes
	member     string
	gen        int
	parts      []sinkPartition
	bufs       [2]*fetchBatch // taking turns (spare)
	turn       int
	ahead      *pendingFetch // the fetch under way, if any
}

type sinkPartition struct {
	tp        elog.TopicPartition
	p         *elog.Partition
	pos       int64
	committed int64 // the group's offset, as this task last committed or found it
}

// join joins the group and positions every assigned partition.
func (s *sinkSession) join(ctx context.Context) error {
	g := s.c.w.log.Groups()
	a, err := g.Join(ctx, s.group, elog.JoinRequest{MemberID: s.member, ClientID: s.c.spec.Name, Topics: s.c.spec.Topics, SessionTimeout: sinkSessionTimeout})
	if err != nil {
		return fmt.Errorf("join group %s: %w", s.group, err)
	}
	s.member, s.gen = a.MemberID, a.Generation
	s.ramp = min(firstFetchBytes, s.fetchBytes)
	committed := g.Committed(s.group)
	var own map[elog.TopicPartition]int64
	if st, ok := s.sink.(OffsetStore); ok {
		if own, err = st.Offsets(ctx); err != nil {
			return fmt.Errorf("offsets from the sink: %w", err)
		}
	}
	s.parts = s.parts[:0]
	for _, tp := range a.Partitions {
		t, err := s.c.w.log.Topic(tp.Topic)
		if err != nil {
			return err
		}
		p, err := t.Partition(tp.Partition)
		if err != nil {
			return err
		}
		pos, stored := p.LogStartOffset(), false // nothing stored: from the earliest the log holds
		if o, ok := own[tp]; ok {
			pos, stored = o, true
		} else if oc, ok := committed[tp]; ok {
			pos, stored = oc.Offset, true
		}
		if start := p.LogStartOffset(); stored && pos < start {
			return s.behindRetention(tp, pos, start)
		}
		s.parts = append(s.parts, sinkPartition{tp: tp, p: p, pos: pos, committed: pos})
	}
	if bs, ok := s.sink.(BufferingSink); ok {
		from := make(map[elog.TopicPartition]int64, len(s.parts))
		for _, sp := range s.parts {
			from[sp.tp] = sp.pos
		}
		bs.Assign(from)
	}
	return nil
}

// ErrBehindRetention is a sink whose position the log no longer holds:
// retention deleted records it had not delivered.
var ErrBehindRetention = errors.New("the log no longer holds the sink's position")

// behindRetention stops the task: going on from the log start, as Kafka's
// auto.offset.reset does for a reader, would leave the target without
// the deleted records forever, in silence.
func (s *sinkSession) behindRetention(tp elog.TopicPartition, pos, start int64) error {
	name := s.c.spec.Name
	return permanent{fmt.Errorf("%s/%d: %w: the sink is at offset %d and retention has deleted the log up to %d, so records %d..%d were never delivered. "+
		"To rebuild the target: stop the connector (PUT /connectors/%s/stop), reset its offsets (DELETE /connectors/%s/offsets; a sink that keeps its own offsets in its target, as the database sinks do in eddy_offsets, must have its rows there deleted too), empty the target and take a new snapshot of the source. "+
		"To accept the gap: do the same without the snapshot, and the sink goes on from offset %d",
		tp.Topic, tp.Partition, ErrBehindRetention, pos, start, pos, start-1, name, name, start)}
}

func (s *sinkSession) heartbeat(ctx context.Context) error {
	err := s.c.w.log.Groups().Heartbeat(s.group, s.member, s.gen)
	if errors.Is(err, elog.ErrRebalanceInProgress) || errors.Is(err, elog.ErrUnknownMember) || errors.Is(err, elog.ErrIllegalGeneration) {
		return s.join(ctx)
	}
	return err
}

func (s *sinkSession) leave() {
	if s.member != "" {
		s.c.w.log.Groups().Leave(s.group, s.member)
	}
}

// fetchBatch is one fetch from a partition, decoded and converted: what
// the task writes next. Two take turns, so that the next is fetched while
// the sink writes the one before (its records alias its buffer).
type fetchBatch struct {
	tp          elog.TopicPartition
	pos         int64 // where it was fetched from
	next        int64 // the offset after it
	err         error
	buf         []byte
	logRec      []elog.Record
	recs        []Record      // one per logRec, in the runtime's model
	unconverted []unconverted // the records that did not convert
	kept        []Record      // the ones to write, when transforms or failures drop some
	origs       []*elog.Record
}

// unconverted is a record that did not convert, and why.
type unconverted struct {
	i   int
	err error
}

// pendingFetch is a fetch under way in the background.
type pendingFetch struct {
	f    *fetchBatch
	done chan struct{}
}

// fetch reads up to size bytes of partition tp (p) at pos into f, and
// decodes and converts them. It takes the partition by value: a rejoin may
// rewrite s.parts while a fetch ahead runs.
func (s *sinkSession) fetch(ctx context.Context, tp elog.TopicPartition, p *elog.Partition, pos int64, size int, f *fetchBatch) {
	f.tp, f.pos, f.next, f.err = tp, pos, pos, nil
	f.logRec, f.recs, f.unconverted = f.logRec[:0], f.recs[:0], f.unconverted[:0]
	res, err := p.FetchInto(f.buf[:0], pos, size)
	if err != nil {
		f.err = err
		return
	}
	f.buf, f.next = res.Data, res.NextOffset
	if len(res.Data) == 0 {
		return
	}
	if f.logRec, err = elog.DecodeBatches(f.logRec, res.Data, pos); err != nil {
		f.err = fmt.Errorf("decode %s: %w", p, err)
		return
	}
	decode := s.conv.Decode
	if s.raw {
		decode = s.conv.DecodeKeepingAvro
	}
	f.recs = slices.Grow(f.recs, len(f.logRec))
	for i := range f.logRec {
		r, err := decode(ctx, tp.Topic, tp.Partition, &f.logRec[i])
		if err != nil {
			f.unconverted = append(f.unconverted, unconverted{i, err})
		}
		f.recs = append(f.recs, r)
	}
}

// take returns the fetch of sp at its position: the one fetched ahead if
// it is that, else a fresh one.
func (s *sinkSession) take(ctx context.Context, sp *sinkPartition) *fetchBatch {
	if a := s.ahead; a != nil {
		s.ahead = nil
		<-a.done
		if a.f.tp == sp.tp && a.f.pos == sp.pos {
			return a.f
		}
	}
	f := s.spare()
	s.fetch(ctx, sp.tp, sp.p, sp.pos, s.ramp, f)
	return f
}

// spare is the fetch buffer not in use: the other of the two than the
// one fetched last.
func (s *sinkSession) spare() *fetchBatch {
	s.turn = 1 - s.turn
	if s.bufs[s.turn] == nil {
		s.bufs[s.turn] = &fetchBatch{buf: make([]byte, 0, s.fetchBytes)} // at its full size at once: the ramp would regrow it
	}
	return s.bufs[s.turn]
}

// fetchAhead starts fetching sp from pos in the background.
func (s *sinkSession) fetchAhead(ctx context.Context, sp *sinkPartition, pos int64) {
	a := &pendingFetch{f: s.spare(), done: make(chan struct{})}
	s.ahead = a
	tp, p, size := sp.tp, sp.p, s.ramp
	go func() {
		defer close(a.done)
		s.fetch(ctx, tp, p, pos, size, a.f)
	}()
}

// dropAhead waits out a fetch under way, whose result nobody will take.
func (s *sinkSession) dropAhead() {
	if s.ahead != nil {
		<-s.ahead.done
		s.ahead = nil
	}
}

// poll fetches from the i-th partition and delivers what it got, while
// the partition polled next is fetched; it returns how many records it
// consumed.
func (s *sinkSession) poll(ctx context.Context, i int) (int, error) {
	if i >= len(s.parts) { // a rejoin took partitions away
		return 0, nil
	}
	sp := &s.parts[i]
	f := s.take(ctx, sp)
	if start := sp.p.LogStartOffset(); errors.Is(f.err, elog.ErrOffsetOutOfRange) && sp.pos < start {
		return 0, s.behindRetention(sp.tp, sp.pos, start) // retention went past us while we ran
	}
	if f.err != nil {
		return 0, fmt.Errorf("fetch %s: %w", sp.p, f.err)
	}
	if len(f.buf) == 0 {
		return 0, nil
	}
	if err := s.fillUp(ctx, sp, f); err != nil {
		return 0, err
	}
	if len(f.logRec) > 0 {
		s.ramp = min(2*s.ramp, s.fetchBytes)
		j := (i + 1) % len(s.parts)
		next := s.parts[j].pos
		if j == i {
			next = f.next
		}
		s.fetchAhead(ctx, &s.parts[j], next)
		if err := s.deliver(ctx, f); err != nil {
			return 0, err
		}
	}
	if rejoined, err := s.commit(ctx, sp, f.next); err != nil || rejoined {
		return 0, err
	}
	sp.pos = f.next
	if s.c.w.poison && len(f.buf) > 0 {
		f.buf[0] = 0xdb
		for n := 1; n < len(f.buf); n *= 2 {
			copy(f.buf[n:], f.buf[:n])
		}
	}
	return len(f.logRec), nil
}

// commit commits the group's offset of sp at next, which the sink has
// been given everything before. A BufferingSink may hold some of it
// unstored, and may have stored what it held of other partitions (one
// Write can store another partition's file): each partition is committed
// up to the first offset the sink holds, or all it was given, whenever
// that moved. rejoined says the group moved partitions meanwhile (s.parts
// is new).
func (s *sinkSession) commit(ctx context.Context, sp *sinkPartition, next int64) (rejoined bool, err error) {
	at := map[elog.TopicPartition]int64{}
	if bs, ok := s.sink.(BufferingSink); !ok {
		at[sp.tp] = next
	} else {
		for i := range s.parts {
			p := &s.parts[i]
			upTo := p.pos
			if p == sp {
				upTo = next
			}
			if first, held := bs.Holding(p.tp); held {
				upTo = min(upTo, first)
			}
			if upTo > p.committed {
				at[p.tp] = upTo
			}
		}
		if len(at) == 0 {
			return false, nil
		}
	}
	if err := s.c.w.log.Groups().Commit(ctx, s.group, s.member, s.gen, at); err != nil {
		if errors.Is(err, elog.ErrRebalanceInProgress) || errors.Is(err, elog.ErrIllegalGeneration) || errors.Is(err, elog.ErrNotAssigned) || errors.Is(err, elog.ErrUnknownMember) {
			return true, s.join(ctx) // the new owner starts from the last commit
		}
		return false, fmt.Errorf("commit %s: %w", s.group, err)
	}
	for i := range s.parts {
		if o, ok := at[s.parts[i].tp]; ok {
			s.parts[i].committed = o
		}
	}
	return false, nil
}

// fillUp is a BatchingSink's linger: while f has read all the partition
// holds and brings fewer records than the sink wants, it waits for more,
// up to the linger in all, and fetches again into f (no fetch ahead is
// under way here, so f is free to reuse).
func (s *sinkSession) fillUp(ctx context.Context, sp *sinkPartition, f *fetchBatch) error {
	if s.linger <= 0 || len(f.logRec) == 0 {
		return nil
	}
	deadline := time.Now().Add(s.linger)
	for (s.fill <= 0 || len(f.logRec) < s.fill) && f.next >= sp.p.HighWatermark() {
		wait := time.Until(deadline)
		if wait <= 0 {
			return nil
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		err := sp.p.Wait(wctx, f.next)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return nil // the linger is over (or the log closes: the next fetch says so)
		}
		s.fetch(ctx, sp.tp, sp.p, sp.pos, s.fetchBytes, f)
		if f.err != nil {
			return fmt.Errorf("fetch %s: %w", sp.p, f.err)
		}
	}
	return nil
}

// deliver transforms and writes a fetch's records.
func (s *sinkSession) deliver(ctx context.Context, f *fetchBatch) error {
	if err := ctx.Err(); err != nil {
		return err // a record that failed to convert may have failed for that: none is dead-lettered
	}
	c := s.c
	start := time.Now()
	c.w.metrics.recordsIn.WithLabelValues(c.spec.Name).Add(float64(len(f.logRec)))
	// pending are the records to write and origs their log records; the
	// fetch's own, unless some did not convert or transforms ran.
	pending, origs := f.recs, []*elog.Record(nil)
	orig := func(i int) *elog.Record {
		if origs == nil {
			return &f.logRec[len(f.logRec)-len(pending)+i]
		}
		return origs[i]
	}
	if len(f.unconverted) > 0 || len(s.ts) > 0 {
		f.kept, f.origs = f.kept[:0], f.origs[:0]
		bad := f.unconverted
		for i := range f.recs {
			in, r := &f.logRec[i], &f.recs[i]
			if len(bad) > 0 && bad[0].i == i {
				err := bad[0].err
				bad = bad[1:]
				if err := c.failRecord(ctx, StageDeserialize, r, in, err); err != nil {
					return err
				}
				continue
			}
			keep, err := applyTransforms(s.ts, r)
			if err != nil {
				if err := c.failRecord(ctx, StageTransform, r, in, err); err != nil {
					return err
				}
				continue
			}
			if keep {
				f.kept = append(f.kept, *r)
				f.origs = append(f.origs, in)
			}
		}
		pending, origs = f.kept, f.origs
	}
	written := 0
	backoff := 100 * time.Millisecond
	var failingSince time.Time
	for len(pending) > 0 {
		err := s.sink.Write(ctx, pending)
		if err == nil {
			written += len(pending)
			break
		}
		var re *RecordError
		if errors.As(err, &re) && re.Index >= 0 && re.Index < len(pending) {
			written += re.Index
			if err := c.failRecord(ctx, StageSink, &pending[re.Index], orig(re.Index), re.Err); err != nil {
				return err
			}
			if origs != nil {
				origs = origs[re.Index+1:]
			}
			pending = pending[re.Index+1:]
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if IsPermanent(err) { // the sink says retrying will not help: fail now, dead-letter nothing
			return fmt.Errorf("write to sink: %w", err)
		}
		if failingSince.IsZero() {
			failingSince = time.Now()
		}
		if time.Since(failingSince) >= c.policy.RetryTimeout {
			return permanent{fmt.Errorf("write to sink: gave up after retrying for %s: %w", c.policy.RetryTimeout, err)}
		}
		c.setState(StateRunning, "retrying: "+err.Error())
		c.w.metrics.writeRetries.WithLabelValues(c.spec.Name).Inc()
		c.w.metrics.targetFailing.WithLabelValues(c.spec.Name).Set(1)
		c.log.Warn("sink write failed; retrying", "err", err, "backoff", backoff)
		if !sleep(ctx, backoff) {
			return ctx.Err()
		}
		backoff = min(backoff*2, max(c.policy.RetryMaxDelay, 100*time.Millisecond))
	}
	if !failingSince.IsZero() {
		c.setState(StateRunning, "")
		c.w.metrics.targetFailing.WithLabelValues(c.spec.Name).Set(0)
	}
	c.w.metrics.recordsOut.WithLabelValues(c.spec.Name).Add(float64(written))
	c.w.metrics.batch.WithLabelValues(c.spec.Name).Observe(time.Since(start).Seconds())
	return nil
}

// waitAny returns when any assigned partition has records past its
// position, or after d.
func (s *sinkSession) waitAny(ctx context.Context, d time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if len(s.parts) == 0 {
		<-ctx.Done()
		return
	}
	done := make(chan struct{}, len(s.parts))
	for _, sp := range s.parts {
		go func() {
			sp.p.Wait(ctx, sp.pos)
			done <- struct{}{}
		}()
	}
	<-done
	cancel()
	for range len(s.parts) - 1 {
		<-done
	}
}
