package connect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	elog "github.com/eddy-cdc/eddy/log"
)

// Headers the runtime adds to every record a source connector appends:
// which connector wrote it and the source position it came from.
const (
	HeaderConnector = "eddy.connector"
	HeaderPosition  = "eddy.position"
)

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
		return false, fmt.Errorf("open source: %w", err)
	}
	format := "avro"
	if c.spec.params.Has("format") {
		format = c.spec.params.String("format")
	}
	b := &sourceBatch{c: c, conv: NewConverter(c.w.serde, format), ts: ts, skip: skip,
		committed: stored.Position, ends: cloneEnds(stored.Ends), byTopic: map[string][]elog.Record{}}
	for {
		if err := c.gate(stopCtx, nil); err != nil {
			return progressed, err
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

// sourceBatch carries a source task's state from batch to batch.
type sourceBatch struct {
	c         *connector
	conv      *Converter
	ts        []Transform
	skip      []byte             // records at or before this are in the log already
	committed []byte             // the stored position
	ends      map[string][]int64 // see SourceOffset.Ends
	buf       []byte
	byTopic   map[string][]elog.Record
}

// deliver takes one polled batch through steps 2 to 5 and returns the
// position to commit to the source.
func (b *sourceBatch) deliver(ctx context.Context, recs []Record) ([]byte, error) {
	c := b.c
	start := time.Now()
	m := c.w.metrics
	m.recordsIn.WithLabelValues(c.spec.Name).Add(float64(len(recs)))
	b.buf = b.buf[:0]
	for t := range b.byTopic {
		b.byTopic[t] = b.byTopic[t][:0]
	}
	last := recs[len(recs)-1].Position
	var newest time.Time
	nameHdr := []byte(c.spec.Name)
	for i := range recs {
		r := &recs[i]
		if b.skip != nil && bytes.Compare(r.Position, b.skip) <= 0 {
			continue
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
		r.Headers = append(r.Headers, elog.Header{Key: HeaderConnector, Value: nameHdr}, elog.Header{Key: HeaderPosition, Value: r.Position})
		var out elog.Record
		if b.buf, err = b.conv.Encode(ctx, r, b.buf, &out); err != nil {
			if err := c.failRecord(ctx, StageSerialize, r, nil, err); err != nil {
				return nil, err
			}
			continue
		}
		b.byTopic[r.Topic] = append(b.byTopic[r.Topic], out)
		if r.Timestamp.After(newest) {
			newest = r.Timestamp
		}
	}
	if err := b.noteNewTopics(ctx); err != nil {
		return nil, err
	}
	if err := b.append(ctx, recs); err != nil {
		return nil, err
	}
	if err := c.w.offsets.Put(ctx, c.spec.Name, SourceOffset{Position: last, Ends: b.ends}); err != nil {
		return nil, err
	}
	b.committed = last
	if b.skip != nil && bytes.Compare(last, b.skip) >= 0 {
		b.skip = nil
	}
	n := 0
	for _, rs := range b.byTopic {
		n += len(rs)
	}
	m.recordsOut.WithLabelValues(c.spec.Name).Add(float64(n))
	m.batch.WithLabelValues(c.spec.Name).Observe(time.Since(start).Seconds())
	if !newest.IsZero() {
		m.sourceLag.WithLabelValues(c.spec.Name).Set(time.Since(newest).Seconds())
	}
	return last, nil
}

// noteNewTopics stores, before the first append to a topic, where this
// connector's records there begin, so a restart knows where to look.
func (b *sourceBatch) noteNewTopics(ctx context.Context) error {
	added := false
	for name, rs := range b.byTopic {
		if _, ok := b.ends[name]; ok || len(rs) == 0 {
			continue
		}
		t, err := b.c.w.ensureTopic(name)
		if err != nil {
			return permanent{fmt.Errorf("topic %s: %w", name, err)}
		}
		ends := make([]int64, t.Partitions())
		for i := range ends {
			p, err := t.Partition(i)
			if err != nil {
				return err
			}
			ends[i] = p.HighWatermark()
		}
		b.ends[name] = ends
		added = true
	}
	if !added {
		return nil
	}
	return b.c.w.offsets.Put(ctx, b.c.spec.Name, SourceOffset{Position: b.committed, Ends: b.ends})
}

// append writes each topic's records, topics in parallel, and moves ends.
func (b *sourceBatch) append(ctx context.Context, recs []Record) error {
	type result struct {
		topic string
		res   []elog.Produced
		err   error
	}
	var wg sync.WaitGroup
	results := make(chan result, len(b.byTopic))
	for name, rs := range b.byTopic {
		if len(rs) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t, err := b.c.w.ensureTopic(name)
			if err != nil {
				results <- result{name, nil, err}
				return
			}
			res, err := produceChunked(ctx, t, rs)
			results <- result{name, res, err}
		}()
	}
	wg.Wait()
	close(results)
	var errs []error
	for r := range results {
		if r.err != nil {
			errs = append(errs, fmt.Errorf("append to %s: %w", r.topic, r.err))
		}
		ends := b.ends[r.topic]
		for _, p := range r.res {
			for p.Partition >= len(ends) {
				ends = append(ends, 0)
			}
			ends[p.Partition] = max(ends[p.Partition], p.Offset+1)
		}
		b.ends[r.topic] = ends
	}
	if err := errors.Join(errs...); err != nil {
		if errors.Is(err, elog.ErrRecordTooLarge) || errors.Is(err, elog.ErrInvalidRecord) {
			return permanent{err}
		}
		return err
	}
	return nil
}

// produceChunked appends records in calls small enough that each
// partition's batch stays under the topic's max_batch_bytes.
func produceChunked(ctx context.Context, t *elog.Topic, rs []elog.Record) ([]elog.Produced, error) {
	limit := t.Config().MaxBatchBytes / 2
	var out []elog.Produced
	for len(rs) > 0 {
		n, size := 0, 0
		for n < len(rs) && (n == 0 || size+recordSize(&rs[n]) < limit) {
			size += recordSize(&rs[n])
			n++
		}
		res, err := t.Produce(ctx, rs[:n])
		out = append(out, res...)
		if err != nil {
			return out, err
		}
		rs = rs[n:]
	}
	return out, nil
}

func recordSize(r *elog.Record) int {
	n := len(r.Key) + len(r.Value) + 24
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value) + 4
	}
	return n
}

// scanTail reads this connector's records that the log holds beyond the
// stored offset's ends and returns the greatest source position among
// them (nil when none is past the stored position).
func (c *connector) scanTail(ctx context.Context, stored SourceOffset) ([]byte, error) {
	var newest []byte
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
					if pos := headerOf(r.Headers, HeaderPosition); bytes.Compare(pos, newest) > 0 {
						newest = bytes.Clone(pos)
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
	if newest != nil && bytes.Compare(newest, stored.Position) <= 0 {
		return nil, nil
	}
	if newest != nil {
		c.w.logger.Info("records past the stored position are in the log already; skipping them", "connector", c.spec.Name)
	}
	return newest, nil
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
