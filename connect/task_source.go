package connect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/eddy-cdc/eddy/internal/avrobin"
	elog "github.com/eddy-cdc/eddy/log"
	"github.com/eddy-cdc/eddy/registry"
)

// Headers the runtime adds to every record a source connector appends:
// which connector wrote it and the source position it came from.
const (
	HeaderConnector = "eddy.connector"
	HeaderPosition  = "eddy.position"
)

// HeaderUnavailable is set by a source on a change whose after-image
// lacks the values of some columns (PostgreSQL logs no unchanged value
// stored out of line, TOAST): their field names, comma-separated. The
// fields hold a placeholder (or null) that is not the row's value; a sink
// leaves those columns as the target has them.
const HeaderUnavailable = "eddy.unavailable"

// runSource is one life of a source task: the checkpoint protocol of
// DESIGN.md, one batch at a time:
//
//  1. Poll a batch from the source.
//  2. Drop records at or before what the log already holds (after a crash
//     between an append and the storing of its position).
//  3. Transform, serialize through the registry.
//  4. Append to the log and wait until it is durable.
//  5. Store the batch's last position in __connect_offsets (durable).
//  6. Commit it to the source, which may now release it upstream.
//
// A crash anywhere leaves the source's acknowledged position at or before
// what is stored, and the stored position at or before what the log
// holds; step 2 closes the gap on restart, so no change is lost or doubled.
func (c *connector) runSource(stopCtx, workCtx context.Context) (progressed bool, err error) {
	factory := c.w.plugins.Sources[c.spec.Plugin]
	if factory == nil {
		return false, permanent{fmt.Errorf("source plugin %s has no implementation", c.spec.Plugin)}
	}
	src, err := factory(c.spec.params, c.env())
	if err != nil {
		return false, permanent{fmt.Errorf("configure %s: %w", c.spec.Plugin, err)}
	}
	defer src.Close()
	ts, err := c.transforms()
	if err != nil {
		return false, err
	}
	stored, _ := c.w.offsets.Get(c.spec.Name)
	skip, err := c.scanTail(workCtx, stored)
	if err != nil {
		return false, fmt.Errorf("read back the log's tail: %w", err)
	}
	if err := src.Open(stopCtx, stored.Position); err != nil {
		var p permanent
		if errors.As(err, &p) {
			return false, permanent{fmt.Errorf("open source: %w", p.err)}
		}
		return false, fmt.Errorf("open source: %w", err)
	}
	format := "avro"
	if c.spec.params.Has("format") {
		format = c.spec.params.String("format")
	}
	conv := NewConverter(c.w.serde, format)
	if c.spec.params.Has("schema_compatibility") {
		conv.Level = registry.Level(c.spec.params.String("schema_compatibility"))
	}
	b := &sourceBatch{c: c, conv: conv, ts: ts, skip: skip,
		committed: stored.Position, ends: cloneEnds(stored.Ends), topics: map[string]*elog.Topic{}, byPart: map[partKey][]elog.Record{}}
	for {
		if err := c.gate(stopCtx, nil); err != nil {
			return progressed, err
		}
		if lr, ok := src.(LagReporter); ok {
			if n, ok := lr.LagBytes(); ok {
				c.w.metrics.lagBytes.WithLabelValues(c.spec.Name).Set(float64(n))
				c.setLag(n)
			}
		}
		if rr, ok := src.(RetentionReporter); ok {
			for _, r := range rr.Retained() {
				c.w.metrics.retained.WithLabelValues(c.spec.Name, r.Name, strconv.FormatBool(r.Orphaned)).Set(float64(r.Bytes))
			}
		}
		recs, err := src.Poll(stopCtx)
		if errors.Is(err, io.EOF) {
			if c.schedule != nil {
				return progressed, nil
			}
			if !sleep(stopCtx, time.Second) {
				return progressed, stopCtx.Err()
			}
			continue
		}
		if err != nil {
			if stopCtx.Err() != nil {
				return progressed, stopCtx.Err()
			}
			return progressed, fmt.Errorf("poll: %w", err)
		}
		if len(recs) == 0 {
			continue
		}
		pos, err := b.deliver(workCtx, recs)
		if err != nil {
			return progressed, err
		}
		if err := src.Commit(workCtx, pos); err != nil {
			return progressed, fmt.Errorf("commit position to the source: %w", err)
		}
		progressed = true
	}
}

// partKey names one partition of one topic.
type partKey struct {
	topic     string
	partition int
}

// sourceBatch carries a source task's state from batch to batch.
type sourceBatch struct {
	c         *connector
	conv      *Converter
	ts        []Transform
	skip      map[partKey][]byte // per partition: records at or before this are in the log already
	committed []byte             // the stored position
	ends      map[string][]int64 // see SourceOffset.Ends
	buf       []byte
	topics    map[string]*elog.Topic
	byPart    map[partKey][]elog.Record
}

// partitionOf places a record as Kafka's default partitioner places a
// keyed one; a keyless record goes by the hash of its source position, so
// a record regenerated after a crash lands where it landed before and
// the per-partition skip finds it.
func partitionOf(r *elog.Record, position []byte, n int) int {
	if r.Key != nil {
		return elog.PartitionForKey(r.Key, n)
	}
	return elog.PartitionForKey(position, n)
}

// deliver takes one polled batch through steps 2 to 5 and returns the
// position to commit to the source.
func (b *sourceBatch) deliver(ctx context.Context, recs []Record) ([]byte, error) {
	c := b.c
	start := time.Now()
	m := c.w.metrics
	m.recordsIn.WithLabelValues(c.spec.Name).Add(float64(len(recs)))
	b.buf = b.buf[:0]
	for k := range b.byPart {
		b.byPart[k] = b.byPart[k][:0]
	}
	last := recs[len(recs)-1].Position
	var newest time.Time
	nameHdr := []byte(c.spec.Name)
	for i := range recs {
		r := &recs[i]
		if r.Topic == "" { // a position marker: stored with the batch, never appended
			if r.Timestamp.After(newest) {
				newest = r.Timestamp
			}
			continue
		}
		if len(b.ts) > 0 { // transforms edit maps, not a source's ordered records
			r.Key, r.Value = avrobin.Plain(r.Key), avrobin.Plain(r.Value)
		}
		keep, err := applyTransforms(b.ts, r)
		if err != nil {
			if err := c.failRecord(ctx, StageTransform, r, nil, err); err != nil {
				return nil, err
			}
			continue
		}
		if !keep {
			continue
		}
		t, err := b.topic(r.Topic)
		if err != nil {
			return nil, err
		}
		r.Headers = append(r.Headers, elog.Header{Key: HeaderConnector, Value: nameHdr}, elog.Header{Key: HeaderPosition, Value: r.Position})
		var out elog.Record
		if b.buf, err = b.conv.Encode(ctx, r, b.buf, &out); err != nil {
			if errors.Is(err, registry.ErrRegistration) {
				return nil, err // the registry's or the schema's trouble: retried, never dead-lettered
			}
			if err := c.failRecord(ctx, StageSerialize, r, nil, err); err != nil {
				return nil, err
			}
			continue
		}
		first, last := partitionOf(&out, r.Position, t.Partitions()), -1
		if r.Broadcast {
			first, last = 0, t.Partitions()-1
		}
		for p := first; p <= max(first, last); p++ {
			k := partKey{r.Topic, p}
			if s := b.skip[k]; s != nil && bytes.Compare(r.Position, s) <= 0 {
				continue // appended before a crash, with its position not yet stored
			}
			b.byPart[k] = append(b.byPart[k], out)
		}
		if r.Timestamp.After(newest) {
			newest = r.Timestamp
		}
	}
	if err := b.noteNewTopics(ctx); err != nil {
		return nil, err
	}
	n, err := b.append(ctx)
	if err != nil {
		return nil, err
	}
	if err := c.w.offsets.Put(ctx, c.spec.Name, SourceOffset{Position: last, Ends: b.ends}); err != nil {
		return nil, err
	}
	b.committed = last
	b.dropPassedSkips(last)
	m.recordsOut.WithLabelValues(c.spec.Name).Add(float64(n))
	m.batch.WithLabelValues(c.spec.Name).Observe(time.Since(start).Seconds())
	if !newest.IsZero() {
		lag := time.Since(newest).Seconds()
		m.sourceLag.WithLabelValues(c.spec.Name).Set(lag)
		c.setLagSeconds(lag)
	}
	return last, nil
}

// dropPassedSkips forgets skip marks the source has gone past.
func (b *sourceBatch) dropPassedSkips(last []byte) {
	for k, s := range b.skip {
		if bytes.Compare(last, s) >= 0 {
			delete(b.skip, k)
		}
	}
}

// topic returns a topic by name, creating it with the worker's defaults.
func (b *sourceBatch) topic(name string) (*elog.Topic, error) {
	if t := b.topics[name]; t != nil {
		return t, nil
	}
	t, err := b.c.w.ensureTopic(name)
	if err != nil {
		return nil, permanent{fmt.Errorf("topic %s: %w", name, err)}
	}
	b.topics[name] = t
	return t, nil
}

// noteNewTopics stores, before the first append to a topic, where this
// connector's records there begin, so a restart knows where to look.
func (b *sourceBatch) noteNewTopics(ctx context.Context) error {
	added := false
	for k, rs := range b.byPart {
		if _, ok := b.ends[k.topic]; ok || len(rs) == 0 {
			continue
		}
		t := b.topics[k.topic]
		ends := make([]int64, t.Partitions())
		for i := range ends {
			p, err := t.Partition(i)
			if err != nil {
				return err
			}
			ends[i] = p.HighWatermark()
		}
		b.ends[k.topic] = ends
		added = true
	}
	if !added {
		return nil
	}
	return b.c.w.offsets.Put(ctx, b.c.spec.Name, SourceOffset{Position: b.committed, Ends: b.ends})
}

// append writes each partition's records, partitions in parallel, waits
// until all are durable and moves ends. Partitions of a batch may become
// durable while others do not (a crash, a full disk): that is what the
// per-partition skip is for.
func (b *sourceBatch) append(ctx context.Context) (int, error) {
	type result struct {
		k    partKey
		next int64
		err  error
	}
	var wg sync.WaitGroup
	results := make(chan result, len(b.byPart))
	total := 0
	for k, rs := range b.byPart {
		if len(rs) == 0 {
			continue
		}
		total += len(rs)
		p, err := b.topics[k.topic].Partition(k.partition)
		if err != nil {
			return 0, err
		}
		limit := b.topics[k.topic].Config().MaxBatchBytes / 2
		wg.Add(1)
		go func() {
			defer wg.Done()
			next, err := appendChunked(ctx, p, rs, limit)
			results <- result{k, next, err}
		}()
	}
	wg.Wait()
	close(results)
	var errs []error
	for r := range results {
		ends := b.ends[r.k.topic]
		for r.k.partition >= len(ends) {
			ends = append(ends, 0)
		}
		ends[r.k.partition] = max(ends[r.k.partition], r.next)
		b.ends[r.k.topic] = ends
		if r.err != nil {
			errs = append(errs, fmt.Errorf("append to %s/%d: %w", r.k.topic, r.k.partition, r.err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		if errors.Is(err, elog.ErrRecordTooLarge) || errors.Is(err, elog.ErrInvalidRecord) {
			return 0, permanent{err}
		}
		return 0, err
	}
	return total, nil
}

// appendChunked appends records in batches that stay under limit bytes
// and returns the offset after the last durable one (0 if none).
func appendChunked(ctx context.Context, p *elog.Partition, rs []elog.Record, limit int) (int64, error) {
	var next int64
	for len(rs) > 0 {
		n, size := 0, 0
		for n < len(rs) && (n == 0 || size+recordSize(&rs[n]) < limit) {
			size += recordSize(&rs[n])
			n++
		}
		_, last, err := p.Append(ctx, rs[:n])
		if err != nil {
			return next, err
		}
		next = last + 1
		rs = rs[n:]
	}
	return next, nil
}

func recordSize(r *elog.Record) int {
	n := len(r.Key) + len(r.Value) + 24
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value) + 4
	}
	return n
}

// scanTail reads this connector's records that the log holds beyond the
// stored offset's ends and returns, per partition, the greatest source
// position among them that is past the stored position.
func (c *connector) scanTail(ctx context.Context, stored SourceOffset) (map[partKey][]byte, error) {
	skip := map[partKey][]byte{}
	var recs []elog.Record
	for name, ends := range stored.Ends {
		t, err := c.w.log.Topic(name)
		if errors.Is(err, elog.ErrUnknownTopic) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for i, from := range ends {
			p, err := t.Partition(i)
			if err != nil {
				return nil, err
			}
			k := partKey{name, i}
			off := max(from, p.LogStartOffset())
			for off < p.HighWatermark() {
				res, err := p.Fetch(off, 1<<20)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", p, err)
				}
				if recs, err = elog.DecodeBatches(recs[:0], res.Data, off); err != nil {
					return nil, fmt.Errorf("%s: %w", p, err)
				}
				for j := range recs {
					r := &recs[j]
					if string(headerOf(r.Headers, HeaderConnector)) != c.spec.Name {
						continue
					}
					if pos := headerOf(r.Headers, HeaderPosition); bytes.Compare(pos, stored.Position) > 0 && bytes.Compare(pos, skip[k]) > 0 {
						skip[k] = bytes.Clone(pos)
					}
				}
				if res.NextOffset <= off {
					break
				}
				off = res.NextOffset
				if err := ctx.Err(); err != nil {
					return nil, err
				}
			}
		}
	}
	if len(skip) > 0 {
		c.log.Info("records past the stored position are in the log already; skipping them", "partitions", len(skip))
	}
	return skip, nil
}

func headerOf(hs []elog.Header, k string) []byte {
	for i := len(hs) - 1; i >= 0; i-- {
		if hs[i].Key == k {
			return hs[i].Value
		}
	}
	return nil
}

func cloneEnds(in map[string][]int64) map[string][]int64 {
	out := make(map[string][]int64, len(in))
	for k, v := range in {
		out[k] = append([]int64(nil), v...)
	}
	return out
}

// sleep waits d or until ctx ends; it reports whether it slept fully.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
