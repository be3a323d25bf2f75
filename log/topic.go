package log

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Topic is a named set of partitions sharing one config.
type Topic struct {
	name  string
	dir   string
	meta  topicMeta
	parts []*Partition
	rr    atomic.Uint64 // round-robin cursor for keyless batches
}

func openTopic(dir string, m topicMeta, o *options, create bool) (*Topic, error) {
	t := &Topic{name: m.Name, dir: dir, meta: m}
	for i := 0; i < m.Config.Partitions; i++ {
		p, err := openPartition(filepath.Join(dir, strconv.Itoa(i)), m.Name, i, m.Config, o, create)
		if err != nil {
			t.close()
			return nil, err
		}
		t.parts = append(t.parts, p)
	}
	return t, nil
}

// Name is the topic's name.
func (t *Topic) Name() string { return t.name }

// Config is the topic's configuration, defaults filled in.
func (t *Topic) Config() TopicConfig { return t.meta.Config }

// Created is when the topic was created.
func (t *Topic) Created() time.Time { return t.meta.Created }

// Partitions is the number of partitions.
func (t *Topic) Partitions() int { return len(t.parts) }

// Partition returns partition i.
func (t *Topic) Partition(i int) (*Partition, error) {
	if i < 0 || i >= len(t.parts) {
		return nil, fmt.Errorf("%w: %s has no partition %d (it has %d)", ErrUnknownTopic, t.name, i, len(t.parts))
	}
	return t.parts[i], nil
}

// Stats reports every partition.
func (t *Topic) Stats() []PartitionStats {
	st := make([]PartitionStats, len(t.parts))
	for i, p := range t.parts {
		st[i] = p.Stats()
	}
	return st
}

// Produced says where one record of a Produce call landed.
type Produced struct {
	Partition int
	Offset    int64
}

// Produce partitions recs as Kafka's default partitioner does — keyed
// records by murmur2 of the key, the keyless records of one call together on
// the next partition in turn — appends each partition's share as one batch,
// and returns once all are durable. The result is in the order of recs.
func (t *Topic) Produce(ctx context.Context, recs []Record) ([]Produced, error) {
	n := len(t.parts)
	byPart := make([][]int, n)
	keyless := -1
	for i := range recs {
		var p int
		if recs[i].Key != nil {
			p = PartitionForKey(recs[i].Key, n)
		} else {
			if keyless < 0 {
				keyless = int(t.rr.Add(1)-1) % n
			}
			p = keyless
		}
		byPart[p] = append(byPart[p], i)
	}
	out := make([]Produced, len(recs))
	var wg sync.WaitGroup
	errs := make([]error, n)
	for p, idx := range byPart {
		if len(idx) == 0 {
			continue
		}
		batch := make([]Record, len(idx))
		for j, i := range idx {
			batch[j] = recs[i]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			first, _, err := t.parts[p].Append(ctx, batch)
			if err != nil {
				errs[p] = err
				return
			}
			for j, i := range idx {
				out[i] = Produced{Partition: p, Offset: first + int64(j)}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func (t *Topic) close() error {
	var errs []error
	for _, p := range t.parts {
		errs = append(errs, p.close())
	}
	return errors.Join(errs...)
}
