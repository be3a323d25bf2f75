package connecttest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/eddy-cdc/eddy/connect"
)

// SourceTarget is what a source plugin gives SourceSuite: an origin with
// the table parts (id bigint primary key, v text) of schema public, and
// ways to change it and to cut the source off.
type SourceTarget struct {
	Plugin string
	New    func(connect.Params, connect.Env) (connect.Source, error)
	// Origin makes a fresh origin whose parts holds rows 1..rows (v
	// "v<id>") and returns the source's parameters, capturing parts to
	// topics prefixed "shop".
	Origin func(t *testing.T, rows int) map[string]any
	// Exec applies statements to the origin, each in its own transaction:
	// "insert ID V", "update ID V", "delete ID".
	Exec func(t *testing.T, params map[string]any, stmts ...string)
	// Disconnect, when set, closes the source's connections to the
	// origin, as a failover or a network cut does.
	Disconnect func(t *testing.T, params map[string]any)
	// Forget, when set, makes the origin lose what it kept for the
	// source's position (a replication slot dropped, binlogs purged).
	Forget     func(t *testing.T, params map[string]any)
	BadConfigs []BadConfig
}

// event is what the suite reads of a record.
type event struct {
	op  string // r, c, u, d; "" for a tombstone
	id  int64
	v   string
	pos []byte
}

func (e event) String() string { return fmt.Sprintf("%s %d=%q", e.op, e.id, e.v) }

type sourceRun struct {
	t      *testing.T
	tg     SourceTarget
	params map[string]any
	src    connect.Source
	last   []byte // position of the last record polled
}

func (r *sourceRun) open(position []byte) {
	r.t.Helper()
	src := mustConstruct(r.t, r.tg.Plugin, r.tg.New, r.params)
	if err := src.Open(context.Background(), position); err != nil {
		r.t.Fatalf("open at %x: %v", position, err)
	}
	r.src, r.last = src, position
	r.t.Cleanup(func() { src.Close() })
}

// poll reads until n events came (or a minute passed), checking that
// positions only grow. It commits nothing: commit does, as the runtime
// does once records are durable in the log.
func (r *sourceRun) poll(n int) ([]event, error) {
	r.t.Helper()
	var out []event
	deadline := time.Now().Add(time.Minute)
	for len(out) < n {
		if time.Now().After(deadline) {
			r.t.Fatalf("%d events after a minute, want %d: %v", len(out), n, out)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		recs, err := r.src.Poll(ctx)
		timedOut := ctx.Err() != nil
		cancel()
		if err == io.EOF || (err != nil && timedOut) {
			continue
		}
		if err != nil {
			return out, err
		}
		for _, rec := range recs {
			if r.last != nil && bytes.Compare(rec.Position, r.last) <= 0 {
				r.t.Fatalf("position %x after %x: positions must grow", rec.Position, r.last)
			}
			r.last = rec.Position
			e, err := readEvent(rec)
			if err != nil {
				r.t.Fatal(err)
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// mustPoll is poll, failing the test on an error.
func (r *sourceRun) mustPoll(n int) []event {
	r.t.Helper()
	got, err := r.poll(n)
	if err != nil {
		r.t.Fatal(err)
	}
	return got
}

// snapshotted makes an origin of rows rows, opens the source on it, reads
// the snapshot and commits it, as every case but the first starts.
func snapshotted(t *testing.T, tg SourceTarget, rows int) *sourceRun {
	t.Helper()
	r := &sourceRun{t: t, tg: tg, params: tg.Origin(t, rows)}
	r.open(nil)
	got := r.mustPoll(rows)
	r.commit(got[len(got)-1].pos)
	return r
}

func (r *sourceRun) commit(pos []byte) {
	r.t.Helper()
	if err := r.src.Commit(context.Background(), pos); err != nil {
		r.t.Fatalf("commit: %v", err)
	}
}

func readEvent(rec connect.Record) (event, error) {
	e := event{pos: rec.Position}
	if rec.Topic != "shop.public.parts" {
		return e, fmt.Errorf("record on topic %s, want shop.public.parts", rec.Topic)
	}
	key, _ := rec.Key.(map[string]any)
	if id, ok := key["id"].(int64); ok {
		e.id = id
	}
	if rec.Value == nil {
		return e, nil // a tombstone
	}
	v, ok := rec.Value.(map[string]any)
	if !ok {
		return e, fmt.Errorf("value %T, want the envelope", rec.Value)
	}
	e.op, _ = v["op"].(string)
	img, _ := v["after"].(map[string]any)
	if e.op == "d" {
		img, _ = v["before"].(map[string]any)
	}
	if img != nil {
		if s, ok := img["v"].(string); ok && e.op != "d" {
			e.v = s
		}
		if id, ok := img["id"].(int64); ok && id != e.id {
			return e, fmt.Errorf("key %d, image %d", e.id, id)
		}
	}
	return e, nil
}

func expectEvents(t *testing.T, what string, got []event, want ...string) {
	t.Helper()
	var g []string
	for _, e := range got {
		g = append(g, e.String())
	}
	if strings.Join(g, ", ") != strings.Join(want, ", ") {
		t.Fatalf("%s:\n  got  %s\n  want %s", what, strings.Join(g, ", "), strings.Join(want, ", "))
	}
}

// SourceSuite runs the source contract against tg.
func SourceSuite(t *testing.T, tg SourceTarget) {
	t.Run("snapshot, then changes, then resume after a commit", func(t *testing.T) { sourceSnapshotChangesResume(t, tg) })
	if tg.Disconnect != nil {
		t.Run("connections closed mid-stream", func(t *testing.T) { sourceDisconnected(t, tg) })
	}
	if tg.Forget != nil {
		t.Run("a position the origin no longer holds is an error, not a skip", func(t *testing.T) { sourceForgotten(t, tg) })
	}
	t.Run("an idle poll ends with its context", func(t *testing.T) { sourceIdlePoll(t, tg) })
	t.Run("close twice", func(t *testing.T) { sourceCloseTwice(t, tg) })
	t.Run("bad config refused at construction", func(t *testing.T) { sourceBadConfig(t, tg) })
}

// sourceSnapshotChangesResume: the snapshot, then the changes, then a resume after a commit that brings exactly what followed it.
func sourceSnapshotChangesResume(t *testing.T, tg SourceTarget) {
	r := &sourceRun{t: t, tg: tg, params: tg.Origin(t, 3)}
	r.open(nil)
	got := r.mustPoll(3)
	expectEvents(t, "the snapshot", got, `r 1="v1"`, `r 2="v2"`, `r 3="v3"`)
	r.commit(got[2].pos)
	tg.Exec(t, r.params, "insert 4 four", "update 2 two ✓", "delete 3", "insert 5 "+strings.Repeat("x", 10000))
	got = r.mustPoll(5)
	expectEvents(t, "the changes", got, `c 4="four"`, `u 2="two ✓"`, `d 3=""`, ` 3=""`, `c 5="`+strings.Repeat("x", 10000)+`"`)
	resumeAt := got[1].pos // committed up to the update: what follows must come again, nothing before
	r.commit(resumeAt)
	if err := r.src.Close(); err != nil {
		t.Fatal(err)
	}
	tg.Exec(t, r.params, "insert 6 while-closed")
	r.open(resumeAt)
	got = r.mustPoll(4)
	expectEvents(t, "resumed after the update", got, `d 3=""`, ` 3=""`, `c 5="`+strings.Repeat("x", 10000)+`"`, `c 6="while-closed"`)
}

// sourceDisconnected: connections closed mid-stream lose nothing once the source is reopened at its committed position.
func sourceDisconnected(t *testing.T, tg SourceTarget) {
	r := snapshotted(t, tg, 1)
	tg.Exec(t, r.params, "insert 2 before")
	committed := r.mustPoll(1)[0].pos
	r.commit(committed)
	tg.Disconnect(t, r.params)
	tg.Exec(t, r.params, "insert 3 during", "update 2 after")
	// The source either reconnects by itself or fails; then the
	// runtime opens it again at the committed position.
	got, err := r.poll(2)
	if err != nil {
		r.src.Close()
		r.open(committed)
		got = r.mustPoll(2)
	}
	expectEvents(t, "after the cut", got, `c 3="during"`, `u 2="after"`)
}

// sourceForgotten: a position the origin forgot fails permanently: never a silent skip.
func sourceForgotten(t *testing.T, tg SourceTarget) {
	r := snapshotted(t, tg, 1)
	tg.Exec(t, r.params, "insert 2 streamed")
	streamed := r.mustPoll(1)[0].pos
	r.commit(streamed)
	if err := r.src.Close(); err != nil {
		t.Fatal(err)
	}
	tg.Forget(t, r.params)
	tg.Exec(t, r.params, "insert 3 lost")
	src := mustConstruct(t, tg.Plugin, tg.New, r.params)
	defer src.Close()
	err := src.Open(context.Background(), streamed)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		recs, perr := src.Poll(ctx)
		cancel()
		if perr == nil || ctx.Err() != nil {
			t.Fatalf("a source whose position the origin forgot opened and polled %d records without an error", len(recs))
		}
		err = perr
	}
	if !connect.IsPermanent(err) {
		t.Fatalf("the lost position's error %v is not permanent: the runtime would retry it forever", err)
	}
}

// sourceIdlePoll: an idle Poll returns once its context ends.
func sourceIdlePoll(t *testing.T, tg SourceTarget) {
	r := snapshotted(t, tg, 1)
	// Nothing changes: a poll must come back when the runtime stops it,
	// or stopping a connector would hang.
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		start := time.Now()
		recs, err := r.src.Poll(ctx)
		cancel()
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("an idle poll took %s after its context ended", took)
		}
		if err == nil && len(recs) > 0 {
			t.Fatalf("an idle poll returned %d records", len(recs))
		}
	}
}

// sourceCloseTwice: Close twice is no error.
func sourceCloseTwice(t *testing.T, tg SourceTarget) {
	r := snapshotted(t, tg, 1)
	if err := r.src.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := r.src.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

// sourceBadConfig: a bad configuration is refused at construction, naming the key.
func sourceBadConfig(t *testing.T, tg SourceTarget) {
	checkBadConfigs(t, tg.Plugin, tg.New, tg.BadConfigs)
}
