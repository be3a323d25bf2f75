package connect

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/eddy-cdc/eddy/internal/avrobin"
	elog "github.com/eddy-cdc/eddy/log"
)

// Headers of a dead-lettered record: Kafka Connect's names, so tools that
// read its dead-letter queues read Eddy's.
const (
	HeaderErrTopic     = "__connect.errors.topic"
	HeaderErrPartition = "__connect.errors.partition"
	HeaderErrOffset    = "__connect.errors.offset"
	HeaderErrConnector = "__connect.errors.connector.name"
	HeaderErrTask      = "__connect.errors.task.id"
	HeaderErrStage     = "__connect.errors.stage"
	HeaderErrClass     = "__connect.errors.exception.class.name"
	HeaderErrMessage   = "__connect.errors.exception.message"
	HeaderErrStack     = "__connect.errors.exception.stacktrace"
)

// Stages where a record can fail.
const (
	StageTransform   = "TRANSFORMATION"
	StageSerialize   = "VALUE_CONVERTER"
	StageDeserialize = "VALUE_CONVERTER"
	StageProduce     = "KAFKA_PRODUCE"
	StageSink        = "TASK_PUT"
)

// failRecord applies errors.tolerance to a record that cannot be handled.
// Under none it returns a permanent error, failing the task with the
// record named. Under all it logs (when errors.log) and dead-letters
// (when a topic is set) the record and returns nil, so the task moves on.
// orig is the record as the log holds it (sinks); nil for sources, whose
// record is written as JSON.
func (c *connector) failRecord(ctx context.Context, stage string, rec *Record, orig *elog.Record, cause error) error {
	where := rec.Topic
	if orig != nil {
		where = fmt.Sprintf("%s/%d offset %d", rec.Topic, rec.Partition, orig.Offset)
	}
	c.w.metrics.errors.WithLabelValues(c.spec.Name).Inc()
	if !c.policy.TolerateAll {
		return permanent{fmt.Errorf("%s: record %s: %w (errors.tolerance is none)", strings.ToLower(stage), where, cause)}
	}
	if c.policy.Log {
		c.log.Warn("record failed", "stage", stage, "record", where, "err", cause)
	}
	if c.policy.DeadLetterTopic == "" {
		return nil
	}
	out := elog.Record{Timestamp: rec.Timestamp}
	if orig != nil {
		out.Key, out.Value = orig.Key, orig.Value
		out.Headers = append(out.Headers, orig.Headers...)
	} else {
		var err error
		if out.Key, err = rawOrJSON(rec.Key); err == nil {
			out.Value, err = rawOrJSON(rec.Value)
		}
		if err != nil {
			return permanent{fmt.Errorf("dead-letter record %s: %w", where, err)}
		}
		out.Headers = append(out.Headers, rec.Headers...)
	}
	h := func(k, v string) { out.Headers = append(out.Headers, elog.Header{Key: k, Value: []byte(v)}) }
	h(HeaderErrTopic, rec.Topic)
	if orig != nil {
		h(HeaderErrPartition, strconv.Itoa(rec.Partition))
		h(HeaderErrOffset, strconv.FormatInt(orig.Offset, 10))
	}
	h(HeaderErrConnector, c.spec.Name)
	h(HeaderErrTask, "0")
	h(HeaderErrStage, stage)
	h(HeaderErrClass, errorClass(cause))
	h(HeaderErrMessage, cause.Error())
	h(HeaderErrStack, errorTrace(cause))
	t, err := c.w.ensureTopic(c.policy.DeadLetterTopic)
	if err != nil {
		return fmt.Errorf("dead-letter topic %s: %w", c.policy.DeadLetterTopic, err)
	}
	if _, err := t.Produce(ctx, []elog.Record{out}); err != nil {
		return fmt.Errorf("dead-letter record %s to %s: %w", where, c.policy.DeadLetterTopic, err)
	}
	c.w.metrics.deadLetters.WithLabelValues(c.spec.Name).Inc()
	return nil
}

func rawOrJSON(v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case []byte:
		return x, nil
	case string:
		return []byte(x), nil
	}
	return avrobin.AppendJSON(nil, v, nil)
}

// errorClass is the Go type of the innermost error, the closest thing to
// an exception class.
func errorClass(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return fmt.Sprintf("%T", err)
		}
		err = next
	}
}

// errorTrace is the error's chain, outermost first, then the stack of the
// goroutine that handled it.
func errorTrace(err error) string {
	var b strings.Builder
	for e := err; e != nil; e = errors.Unwrap(e) {
		fmt.Fprintf(&b, "%T: %v\n", e, e)
	}
	b.WriteString("\n")
	b.Write(debug.Stack())
	return b.String()
}
