package connect

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	elog "github.com/eddy-cdc/eddy/log"
)

// ConnectorOffsets is Kafka Connect's GET .../offsets shape.
type ConnectorOffsets struct {
	Offsets []ConnectorOffset `json:"offsets"`
}

// ConnectorOffset is one partition's offset: for a source, its stored
// position (partition {"task": 0}); for a sink, the group's committed
// offset of one topic-partition.
type ConnectorOffset struct {
	Partition map[string]any `json:"partition"`
	Offset    map[string]any `json:"offset"`
}

// Offsets reports a connector's stored position or committed offsets.
func (w *Worker) Offsets(name string) (ConnectorOffsets, error) {
	c, err := w.connector(name)
	if err != nil {
		return ConnectorOffsets{}, err
	}
	out := ConnectorOffsets{Offsets: []ConnectorOffset{}}
	if c.spec.kind == KindSource {
		if so, ok := w.offsets.Get(name); ok {
			out.Offsets = append(out.Offsets, ConnectorOffset{
				Partition: map[string]any{"task": 0},
				Offset:    map[string]any{"position": so.Position, "ends": so.Ends},
			})
		}
		return out, nil
	}
	committed := w.log.Groups().Committed(GroupFor(name))
	tps := make([]elog.TopicPartition, 0, len(committed))
	for tp := range committed {
		tps = append(tps, tp)
	}
	sort.Slice(tps, func(a, b int) bool {
		if tps[a].Topic != tps[b].Topic {
			return tps[a].Topic < tps[b].Topic
		}
		return tps[a].Partition < tps[b].Partition
	})
	for _, tp := range tps {
		out.Offsets = append(out.Offsets, ConnectorOffset{
			Partition: map[string]any{"kafka_topic": tp.Topic, "kafka_partition": tp.Partition},
			Offset:    map[string]any{"kafka_offset": committed[tp].Offset},
		})
	}
	return out, nil
}

// ErrHoldsUpstream refuses to delete a connector whose source holds state
// upstream until the caller says whether to release it.
var ErrHoldsUpstream = errors.New("the connector holds state upstream")

// DeleteResult says what deleting a connector did.
type DeleteResult struct {
	Name string `json:"name"`
	// Held is what its source held upstream, each with whether it was
	// released (dropped).
	Held []HeldResource `json:"held"`
	Note string         `json:"note"`
}

// HeldResource is one thing a deleted connector's source held upstream.
type HeldResource struct {
	Name          string `json:"name"`
	RetainedBytes int64  `json:"retained_bytes"`
	Released      bool   `json:"released"`
}

// Delete stops a connector's task and removes it from the worker; its
// stored offsets stay, as Kafka Connect keeps them. When its source holds
// state upstream (Holder), release must say what becomes of it: nil
// refuses with ErrHoldsUpstream naming what is held, true releases it,
// false keeps it (the source's orphan checks then report it).
func (w *Worker) Delete(ctx context.Context, name string, release *bool) (DeleteResult, error) {
	c, err := w.connector(name)
	if err != nil {
		return DeleteResult{}, err
	}
	res := DeleteResult{Name: name, Held: []HeldResource{},
		Note: "removed from the running worker; remove it from eddy.yaml too, or the next start runs it again (from its stored offsets, which are kept)"}
	holder, closeHolder, err := c.holder()
	if err != nil {
		return res, err
	}
	defer closeHolder()
	if holder != nil {
		held, err := holder.Held(ctx)
		if err != nil {
			return res, fmt.Errorf("delete %s: list what its source holds upstream: %w", name, err)
		}
		if len(held) > 0 && release == nil {
			var what []string
			for _, h := range held {
				what = append(what, fmt.Sprintf("%s (retaining %d bytes)", h.Name, h.Bytes))
			}
			return res, fmt.Errorf("%w: connector %s holds %s, which the upstream keeps for it while nobody reads it: "+
				"delete with release=true to drop it too, or release=false to keep it (to be reported as an orphan)", ErrHoldsUpstream, name, strings.Join(what, ", "))
		}
		for _, h := range held {
			res.Held = append(res.Held, HeldResource{Name: h.Name, RetainedBytes: h.Bytes})
		}
	}
	if err := c.setTarget(StateStopped); err != nil {
		return res, err
	}
	if err := c.stopTask(ctx); err != nil {
		return res, fmt.Errorf("delete %s: stop its task: %w", name, err)
	}
	w.mu.Lock()
	if c.schedule != nil {
		w.sched.Remove(c.entry)
	}
	delete(w.conns, name)
	w.mu.Unlock()
	w.metrics.forget(name)
	w.logger.Info("connector deleted", "connector", name)
	if holder != nil && release != nil && *release && len(res.Held) > 0 {
		if err := holder.Release(ctx); err != nil {
			return res, fmt.Errorf("delete %s: the connector is removed, but releasing what its source held failed: %w", name, err)
		}
		for i := range res.Held {
			res.Held[i].Released = true
		}
		w.logger.Info("released what the deleted connector held upstream", "connector", name, "held", len(res.Held))
	}
	return res, nil
}

// ResetOffsets forgets a stopped connector's position (a source starts
// from the beginning) or moves its group to the earliest offsets (a sink).
// A sink that keeps its own offsets resumes from those regardless.
func (w *Worker) ResetOffsets(ctx context.Context, name string) error {
	c, err := w.connector(name)
	if err != nil {
		return err
	}
	c.lock()
	target, done := c.target, c.done
	c.unlock()
	running := false
	if done != nil {
		select {
		case <-done:
		default:
			running = true
		}
	}
	if target != StateStopped || running {
		return fmt.Errorf("%w: connector %s must be stopped (PUT /connectors/%s/stop) before its offsets are reset", ErrConnectorState, name, name)
	}
	if c.spec.kind == KindSource {
		if err := w.offsets.Delete(ctx, name); err != nil {
			return err
		}
		return c.resetSource(ctx)
	}
	for _, t := range c.spec.Topics {
		if _, err := w.log.Groups().ResetOffsets(ctx, GroupFor(name), t, elog.OffsetSpec{Kind: "earliest"}); err != nil {
			return err
		}
	}
	return nil
}
