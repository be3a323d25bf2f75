package connect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/robfig/cron/v3"

	elog "github.com/eddy-cdc/eddy/log"
)

// connector is one configured connector and its single task.
//
// Invariant: at most one task goroutine runs per connector; cancel and
// done belong to it and are replaced only after done is closed.
type connector struct {
	w        *Worker
	spec     ConnectorSpec
	policy   ErrorPolicy
	schedule cron.Schedule // nil: runs continuously
	entry    cron.EntryID

	mu      chan struct{} // a one-slot lock that select can wait on
	target  string        // RUNNING, PAUSED or STOPPED: what the user asked for
	state   string        // the task's state
	trace   string
	stop    context.CancelFunc // stops polling; the batch in hand still completes
	kill    context.CancelFunc // aborts the batch in hand too
	done    chan struct{}
	wake    chan struct{} // closed and replaced when target changes
	lastRun time.Time
	lag     *int64   // bytes behind upstream, from a LagReporter source
	lagSecs *float64 // commit-to-durable time of the last batch's newest record

	// redact keeps the connector's secrets out of its status and its log
	// lines; log is the connector's logger, through it.
	redact *redactor
	log    *slog.Logger
}

func (c *connector) setLagSeconds(v float64) {
	c.lock()
	c.lagSecs = &v
	c.unlock()
}

func (c *connector) setLag(n int64) {
	c.lock()
	c.lag = &n
	c.unlock()
}

func (w *Worker) newConnector(spec ConnectorSpec) (*connector, error) {
	c := &connector{w: w, spec: spec, policy: spec.Errors.Policy(), target: StateRunning, state: StateUnassigned,
		mu: make(chan struct{}, 1), wake: make(chan struct{})}
	secrets := spec.params.Secrets()
	for _, t := range spec.Transforms {
		secrets = append(secrets, t.params.Secrets()...)
	}
	c.redact = newRedactor(secrets)
	c.log = slog.New(c.redact.handler(w.logger.Handler())).With("connector", spec.Name)
	if spec.Schedule != "" {
		s, err := ParseSchedule(spec.Schedule)
		if err != nil {
			return nil, fmt.Errorf("schedule: %w", err)
		}
		c.schedule = s
	}
	w.metrics.add(spec.Name)
	return c, nil
}

func (c *connector) lock()   { c.mu <- struct{}{} }
func (c *connector) unlock() { <-c.mu }

// start launches the task unless one runs. Callers hold no lock.
func (c *connector) start() {
	c.lock()
	defer c.unlock()
	c.startLocked()
}

func (c *connector) startLocked() {
	if c.done != nil {
		select {
		case <-c.done:
		default:
			return // running
		}
	}
	stopCtx, stop := context.WithCancel(context.Background())
	workCtx, kill := context.WithCancel(context.Background())
	c.stop, c.kill, c.done = stop, kill, make(chan struct{})
	c.state, c.trace = StateRunning, ""
	if c.target == StatePaused {
		c.state = StatePaused
	}
	c.lastRun = time.Now()
	go c.run(stopCtx, workCtx, c.done)
}

// tick is the cron entry of a scheduled connector.
func (c *connector) tick() {
	c.lock()
	defer c.unlock()
	if c.target != StateRunning {
		return
	}
	c.startLocked()
}

// stopTask stops the task and waits for it to drain; when ctx ends first
// it aborts the batch in hand (which stays unacknowledged, so nothing is
// lost) and still waits for the goroutine.
func (c *connector) stopTask(ctx context.Context) error {
	c.lock()
	done, stop, kill := c.done, c.stop, c.kill
	c.unlock()
	if done == nil {
		return nil
	}
	stop()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		kill()
		<-done
		return fmt.Errorf("connector %s: did not drain in time; its last batch will be redone", c.spec.Name)
	}
}

func (c *connector) restart(ctx context.Context) error {
	c.lock()
	target := c.target
	c.unlock()
	if target == StateStopped {
		return fmt.Errorf("%w: %s is stopped; resume it", ErrConnectorState, c.spec.Name)
	}
	if err := c.stopTask(ctx); err != nil {
		return err
	}
	c.start()
	return nil
}

func (c *connector) setTarget(t string) error {
	c.lock()
	defer c.unlock()
	if c.target == t {
		return nil
	}
	c.target = t
	close(c.wake)
	c.wake = make(chan struct{})
	if t == StateRunning && c.schedule == nil {
		c.startLocked() // resuming a stopped connector starts its task
	}
	return nil
}

// gate blocks while the connector is paused, reporting PAUSED, and
// returns ctx's error when the task must stop. idle runs at least every
// second while paused (a sink heartbeats its group there).
func (c *connector) gate(ctx context.Context, idle func()) error {
	for {
		c.lock()
		target, wake := c.target, c.wake
		if target != StatePaused && c.state == StatePaused {
			c.state = StateRunning
		}
		if target == StatePaused {
			c.state = StatePaused
		}
		c.unlock()
		if target != StatePaused {
			return ctx.Err()
		}
		t := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-wake:
		case <-t.C:
			if idle != nil {
				idle()
			}
		}
		t.Stop()
	}
}

func (c *connector) setState(state, trace string) {
	trace = c.redact.text(trace)
	c.lock()
	c.state, c.trace = state, trace
	c.unlock()
}

// permanent marks an error that retrying will not fix: the task goes
// straight to FAILED.
type permanent struct{ err error }

// Permanent marks a plugin's error as one that retrying will not fix (a
// missing table, a permission, a setting): the task stops FAILED with it at
// once instead of retrying until errors.retry_timeout.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// IsPermanent says whether err, or an error it wraps, was marked by
// Permanent, or is a log partition's disk failure: the partition refuses
// appends until the log is reopened, so no retry can help.
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p) || errors.Is(err, elog.ErrPartitionFailed)
}

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// run is the task goroutine: it runs the task, restarting it with
// exponential backoff after transient failures, until stopped, drained
// (a scheduled connector) or failed.
func (c *connector) run(stopCtx, workCtx context.Context, done chan struct{}) {
	defer close(done)
	log := c.log
	backoff := 100 * time.Millisecond
	var failingSince time.Time
	for {
		var progressed bool
		var err error
		if c.spec.kind == KindSource {
			progressed, err = c.runSource(stopCtx, workCtx)
		} else {
			progressed, err = c.runSink(stopCtx, workCtx)
		}
		if stopCtx.Err() != nil {
			c.lock()
			switch {
			case c.state == StateFailed:
			case c.target == StateStopped:
				c.state, c.trace = StateUnassigned, ""
			default:
				c.state = StateUnassigned
			}
			c.unlock()
			log.Info("task stopped")
			return
		}
		if err == nil { // drained: a scheduled run is over
			c.setState(StateUnassigned, "")
			log.Info("scheduled run done")
			return
		}
		c.w.metrics.errors.WithLabelValues(c.spec.Name).Inc()
		if IsPermanent(err) {
			c.setState(StateFailed, err.Error())
			log.Error("task failed", "err", err)
			return
		}
		if progressed {
			failingSince, backoff = time.Time{}, 100*time.Millisecond
		}
		if failingSince.IsZero() {
			failingSince = time.Now()
		}
		if time.Since(failingSince) >= c.policy.RetryTimeout {
			c.setState(StateFailed, fmt.Sprintf("gave up after retrying for %s: %v", c.policy.RetryTimeout, err))
			log.Error("task failed after retries", "err", err, "retry_timeout", c.policy.RetryTimeout)
			return
		}
		c.setState(StateRestarting, err.Error())
		log.Warn("task failed; restarting", "err", err, "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-stopCtx.Done():
		case <-t.C:
		}
		t.Stop()
		backoff = min(backoff*2, max(c.policy.RetryMaxDelay, 100*time.Millisecond))
		c.lock()
		if c.state == StateRestarting {
			c.state = StateRunning
		}
		c.unlock()
	}
}

func (c *connector) status() ConnectorStatus {
	c.lock()
	defer c.unlock()
	st := ConnectorStatus{Name: c.spec.Name, Type: c.spec.kind,
		Connector: StateInfo{State: StateRunning, WorkerID: c.w.id},
		Tasks:     []TaskStatus{{ID: 0, State: c.state, WorkerID: c.w.id, Trace: c.trace}}}
	switch {
	case c.target == StateStopped:
		st.Connector.State = StateStopped
	case c.target == StatePaused:
		st.Connector.State = StatePaused
	case c.state == StateFailed:
		st.Connector.State = StateFailed
	case c.state == StateUnassigned && c.schedule == nil:
		st.Connector.State = StateUnassigned
	}
	if c.lag != nil {
		st.SourceLagBytes = c.lag
	}
	if c.lagSecs != nil {
		st.SourceLagSeconds = c.lagSecs
	}
	if c.schedule != nil {
		st.Schedule = &Schedule{Cron: c.spec.Schedule, NextRun: c.schedule.Next(time.Now())}
		if !c.lastRun.IsZero() {
			t := c.lastRun
			st.Schedule.LastRun = &t
		}
	}
	return st
}

func (c *connector) info() ConnectorInfo {
	in := ConnectorInfo{Name: c.spec.Name, Type: c.spec.kind, Plugin: c.spec.Plugin, Topics: c.spec.Topics,
		Config: c.spec.params.Redacted(), Tasks: []TaskID{{c.spec.Name, 0}}}
	for _, t := range c.spec.Transforms {
		m := t.params.Redacted()
		m["type"] = t.Type
		in.Transforms = append(in.Transforms, m)
	}
	return in
}

// holder is a fresh instance of the connector's source when it holds
// state upstream (Holder), nil otherwise, and how to close it.
func (c *connector) holder() (Holder, func(), error) {
	factory := c.w.plugins.Sources[c.spec.Plugin]
	if factory == nil || c.spec.kind != KindSource {
		return nil, func() {}, nil
	}
	src, err := factory(c.spec.params, c.env())
	if err != nil {
		return nil, func() {}, fmt.Errorf("configure %s: %w", c.spec.Plugin, err)
	}
	h, ok := src.(Holder)
	if !ok {
		src.Close()
		return nil, func() {}, nil
	}
	return h, func() { src.Close() }, nil
}

// resetSource lets a source release its upstream state after its offsets
// were deleted.
func (c *connector) resetSource(ctx context.Context) error {
	factory := c.w.plugins.Sources[c.spec.Plugin]
	if factory == nil {
		return nil
	}
	src, err := factory(c.spec.params, c.env())
	if err != nil {
		return err
	}
	defer src.Close()
	if r, ok := src.(Resetter); ok {
		if err := r.Reset(ctx); err != nil {
			return fmt.Errorf("reset %s: %w", c.spec.Name, err)
		}
	}
	return nil
}

func (c *connector) env() Env {
	return Env{Connector: c.spec.Name, Logger: c.log, Peers: c.w.peers,
		History: func() (History, error) { return OpenHistory(c.w.log, c.spec.Name) }}
}

// transforms builds the task's own transform chain.
func (c *connector) transforms() ([]Transform, error) {
	out := make([]Transform, 0, len(c.spec.Transforms))
	for _, t := range c.spec.Transforms {
		tr, err := c.w.newTransform(t, c.env())
		if err != nil {
			return nil, permanent{err}
		}
		out = append(out, tr)
	}
	return out, nil
}

// newTransform builds a transform of a connector's chain: the runtime's
// own, or a plugin's.
func (w *Worker) newTransform(t TransformSpec, env Env) (Transform, error) {
	var tr Transform
	var err error
	if build, own := builtinTransform(t.Type); own {
		tr, err = build(t.params)
	} else if build := w.plugins.Transforms[t.Type]; build != nil {
		tr, err = build(t.params, env)
	} else {
		err = errors.New("no implementation")
	}
	if err != nil {
		if l := t.line; l > 0 {
			return nil, fmt.Errorf("transform %s (line %d): %w", t.Type, l, err)
		}
		return nil, fmt.Errorf("transform %s: %w", t.Type, err)
	}
	return tr, nil
}

// applyTransforms runs the chain; keep is false when one dropped r.
func applyTransforms(ts []Transform, r *Record) (bool, error) {
	for _, t := range ts {
		keep, err := t.Apply(r)
		if err != nil || !keep {
			return false, err
		}
	}
	return true, nil
}
