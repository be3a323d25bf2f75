package connect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"

	elog "github.com/eddy-cdc/eddy/log"
	"github.com/eddy-cdc/eddy/registry"
)

// Connector and task states, as Kafka Connect names them.
const (
	StateUnassigned = "UNASSIGNED"
	StateRunning    = "RUNNING"
	StatePaused     = "PAUSED"
	StateStopped    = "STOPPED"
	StateFailed     = "FAILED"
	StateRestarting = "RESTARTING"
)

// Sentinel errors of connector control; the admin API maps them to 404
// and 409.
var (
	ErrUnknownConnector = errors.New("unknown connector")
	ErrConnectorState   = errors.New("not allowed in the connector's state")
)

// Worker runs connectors and jobs over one log: each connector has one
// task, a goroutine the worker owns. A task that fails never takes another
// down; transient failures restart it with exponential backoff until
// errors.retry_timeout, then it stays FAILED with its error until
// restarted.
type Worker struct {
	log      *elog.Log
	serde    *registry.Serde
	plugins  Plugins
	logger   *slog.Logger
	offsets  *offsetStore
	sched    *cron.Cron
	metrics  *Metrics
	id       string
	defaults elog.TopicConfig
	poison   bool // overwrite each fetch once delivered (WithPoisonedFetches)
	// protectBytes, when set, is the retention protection's bound
	// (WithRetentionProtection).
	protectBytes *int64

	// jobsCtx ends when the worker closes: the running jobs' context.
	jobsCtx  context.Context
	stopJobs context.CancelFunc

	mu    sync.Mutex
	conns map[string]*connector
	jobs  map[string]*job
}

// WorkerOption configures NewWorker.
type WorkerOption func(*Worker)

// WithWorkerLogger sets the logger (default: discard).
func WithWorkerLogger(l *slog.Logger) WorkerOption { return func(w *Worker) { w.logger = l } }

// WithTopicDefaults sets the config of topics connectors create (default:
// the log's defaults).
func WithTopicDefaults(c elog.TopicConfig) WorkerOption {
	return func(w *Worker) { w.defaults = c }
}

// WithPoisonedFetches makes sink tasks overwrite each fetch's bytes once
// its records are delivered and committed, before the buffer is read
// into again. A sink must not keep anything of a record past Write
// (AvroValue bodies, positions, header values alias the fetch); with this
// on, one that does reads garbage at once rather than, rarely, the next
// fetch's data. For tests.
func WithPoisonedFetches() WorkerOption { return func(w *Worker) { w.poison = true } }

// NewWorker opens the connector offsets over l; serialization goes through
// serde.
func NewWorker(ctx context.Context, l *elog.Log, serde *registry.Serde, plugins Plugins, opts ...WorkerOption) (*Worker, error) {
	host, _ := os.Hostname()
	w := &Worker{
		log: l, serde: serde, plugins: plugins,
		logger:  slog.New(slog.DiscardHandler),
		metrics: newMetrics(),
		id:      fmt.Sprintf("%s:%d", host, os.Getpid()),
		conns:   map[string]*connector{},
		jobs:    map[string]*job{},
		sched:   cron.New(cron.WithParser(cronParser)),
	}
	for _, o := range opts {
		o(w)
	}
	w.jobsCtx, w.stopJobs = context.WithCancel(context.Background())
	var err error
	if w.offsets, err = openOffsetStore(ctx, l); err != nil {
		return nil, err
	}
	if w.protectBytes != nil {
		l.ProtectRetention(w.sinkKeep, *w.protectBytes)
	}
	w.sched.Start()
	return w, nil
}

// Metrics are the worker's Prometheus collectors.
func (w *Worker) Metrics() *Metrics { return w.metrics }

// WithRetentionProtection makes the log's retention keep, in each
// partition of up to maxBytes (0: no bound), the records the worker's
// sink connectors have not consumed: a sink that is down or slow finds
// its records when it comes back instead of a gap (which stops it:
// ErrBehindRetention).
func WithRetentionProtection(maxBytes int64) WorkerOption {
	return func(w *Worker) { w.protectBytes = &maxBytes }
}

// sinkKeep is the retention guard: the least offset any sink connector
// reading tp has not consumed (its group's committed offset, 0 before its
// first commit).
func (w *Worker) sinkKeep(tp elog.TopicPartition) (int64, bool) {
	w.mu.Lock()
	var groups []string
	for _, c := range w.conns {
		if _, sink := w.plugins.Sinks[c.spec.Plugin]; sink && slices.Contains(c.spec.Topics, tp.Topic) {
			groups = append(groups, GroupFor(c.spec.Name))
		}
	}
	w.mu.Unlock()
	keep, ok := int64(0), false
	for _, g := range groups {
		next := int64(0)
		if oc, committed := w.log.Groups().Committed(g)[tp]; committed {
			next = oc.Offset
		}
		if !ok || next < keep {
			keep, ok = next, true
		}
	}
	return keep, ok
}

// peers lists the configured connectors (Env.Peers).
func (w *Worker) peers() []Peer {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]Peer, 0, len(w.conns))
	for _, c := range w.conns {
		out = append(out, Peer{Name: c.spec.Name, Plugin: c.spec.Plugin, Params: c.spec.params})
	}
	return out
}

// Add registers a connector (checked by LoadConfig) and starts it, or
// schedules it when it has a schedule.
func (w *Worker) Add(spec ConnectorSpec) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, dup := w.conns[spec.Name]; dup {
		return fmt.Errorf("connector %s: already running", spec.Name)
	}
	c, err := w.newConnector(spec)
	if err != nil {
		return fmt.Errorf("connector %s: %w", spec.Name, err)
	}
	for _, t := range spec.Transforms { // a plugin's transform checks its params here
		if _, err := w.newTransform(t, c.env()); err != nil {
			return fmt.Errorf("connector %s: %w", spec.Name, err)
		}
	}
	w.conns[spec.Name] = c
	if c.schedule != nil {
		c.entry = w.sched.Schedule(c.schedule, cron.FuncJob(c.tick)) // parsed once, in newConnector
		return nil
	}
	c.start()
	return nil
}

// AddJob schedules a job.
func (w *Worker) AddJob(spec JobSpec) error {
	j := &job{w: w, spec: spec}
	if build := w.plugins.Jobs[spec.Plugin]; build != nil {
		impl, err := build(spec.params, JobEnv{Job: spec.Name, Logger: w.logger.With("job", spec.Name), Peers: w.peers,
			SourcePosition: func(connector string) ([]byte, bool) {
				so, ok := w.offsets.Get(connector)
				return so.Position, ok && so.Position != nil
			}})
		if err != nil {
			return fmt.Errorf("job %s: %w", spec.Name, err)
		}
		j.impl = impl // built outside w.mu: a job's constructor may ask for the peers
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, dup := w.jobs[spec.Name]; dup {
		return fmt.Errorf("job %s: already scheduled", spec.Name)
	}
	if c, ok := j.impl.(prometheus.Collector); ok {
		w.metrics.jobs.add(spec.Name, c)
	}
	id, err := w.sched.AddFunc(spec.Schedule, j.run)
	if err != nil {
		return fmt.Errorf("job %s: %w", spec.Name, err)
	}
	j.entry = id
	w.jobs[spec.Name] = j
	return nil
}

// Connectors lists connector names, sorted.
func (w *Worker) Connectors() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.conns))
	for n := range w.conns {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (w *Worker) connector(name string) (*connector, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.conns[name]
	if c == nil {
		return nil, fmt.Errorf("%w: %s", ErrUnknownConnector, name)
	}
	return c, nil
}

// Status reports a connector and its task.
func (w *Worker) Status(name string) (ConnectorStatus, error) {
	c, err := w.connector(name)
	if err != nil {
		return ConnectorStatus{}, err
	}
	return c.status(), nil
}

// Info returns a connector's config with secrets redacted.
func (w *Worker) Info(name string) (ConnectorInfo, error) {
	c, err := w.connector(name)
	if err != nil {
		return ConnectorInfo{}, err
	}
	return c.info(), nil
}

// Pause suspends a connector's task between batches.
func (w *Worker) Pause(name string) error {
	c, err := w.connector(name)
	if err != nil {
		return err
	}
	return c.setTarget(StatePaused)
}

// Resume continues a paused connector, or starts a stopped one.
func (w *Worker) Resume(name string) error {
	c, err := w.connector(name)
	if err != nil {
		return err
	}
	return c.setTarget(StateRunning)
}

// Stop shuts a connector's task down (draining it) and keeps it stopped
// until resumed; its offsets may then be reset.
func (w *Worker) Stop(ctx context.Context, name string) error {
	c, err := w.connector(name)
	if err != nil {
		return err
	}
	if err := c.setTarget(StateStopped); err != nil {
		return err
	}
	return c.stopTask(ctx)
}

// Restart stops the task (draining it) and starts it again; it is how a
// FAILED task is brought back.
func (w *Worker) Restart(ctx context.Context, name string) error {
	c, err := w.connector(name)
	if err != nil {
		return err
	}
	return c.restart(ctx)
}

// Close stops every task, letting each finish its batch (append, commit,
// acknowledge), and waits for them until ctx ends.
func (w *Worker) Close(ctx context.Context) error {
	w.stopJobs()
	<-w.sched.Stop().Done()
	w.mu.Lock()
	conns := make([]*connector, 0, len(w.conns))
	for _, c := range w.conns {
		conns = append(conns, c)
	}
	w.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(conns))
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.stopTask(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// ensureTopic returns a topic, creating it with the worker's defaults.
func (w *Worker) ensureTopic(name string) (*elog.Topic, error) {
	t, err := w.log.Topic(name)
	if err == nil {
		return t, nil
	}
	if !errors.Is(err, elog.ErrUnknownTopic) {
		return nil, err
	}
	return w.log.EnsureTopic(name, w.defaults)
}

// ConnectorStatus is Kafka Connect's status shape, with Eddy's schedule.
type ConnectorStatus struct {
	Name      string       `json:"name"`
	Connector StateInfo    `json:"connector"`
	Tasks     []TaskStatus `json:"tasks"`
	Type      string       `json:"type"`
	Schedule  *Schedule    `json:"schedule,omitempty"`
	// SourceLagBytes is how far a source is behind its upstream (WAL or
	// binlog bytes), for sources that can tell.
	SourceLagBytes *int64 `json:"source_lag_bytes,omitempty"`
	// SourceLagSeconds is how old the newest record of the last batch was
	// (by its source timestamp) when it became durable.
	SourceLagSeconds *float64 `json:"source_lag_seconds,omitempty"`
}

// StateInfo is a connector's state.
type StateInfo struct {
	State    string `json:"state"`
	WorkerID string `json:"worker_id"`
	Trace    string `json:"trace,omitempty"`
}

// TaskStatus is a task's state; Trace holds the error of a FAILED or
// RESTARTING task.
type TaskStatus struct {
	ID       int    `json:"id"`
	State    string `json:"state"`
	WorkerID string `json:"worker_id"`
	Trace    string `json:"trace,omitempty"`
}

// Schedule is a scheduled connector's or job's cron state.
type Schedule struct {
	Cron    string     `json:"cron"`
	NextRun time.Time  `json:"next_run"`
	LastRun *time.Time `json:"last_run,omitempty"`
}

// ConnectorInfo is GET /connectors/{name}: the config as written, secrets
// redacted.
type ConnectorInfo struct {
	Name   string         `json:"name"`
	Type   string         `json:"type"`
	Plugin string         `json:"plugin"`
	Topics []string       `json:"topics,omitempty"`
	Config map[string]any `json:"config"`
	// Transforms are the chain in order: type and parameters, redacted.
	Transforms []map[string]any `json:"transforms,omitempty"`
	Tasks      []TaskID         `json:"tasks"`
}

// TaskID names a task.
type TaskID struct {
	Connector string `json:"connector"`
	Task      int    `json:"task"`
}

// JobStatus reports a scheduled job.
type JobStatus struct {
	Name     string   `json:"name"`
	Plugin   string   `json:"plugin"`
	Schedule Schedule `json:"schedule"`
	Runs     int      `json:"runs"`
	LastErr  string   `json:"last_error,omitempty"`
}

// Jobs reports the scheduled jobs.
func (w *Worker) Jobs() []JobStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []JobStatus
	for _, j := range w.jobs {
		out = append(out, j.status())
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

// job is a scheduled job plugin.
type job struct {
	w       *Worker
	spec    JobSpec
	entry   cron.EntryID
	impl    Job // a plugin's; nil for the runtime's own (exec)
	running atomic.Bool

	mu      sync.Mutex
	runs    int
	lastRun time.Time
	lastErr error
}

func (j *job) run() {
	if err := j.runOnce(j.w.jobsCtx); errors.Is(err, errJobRunning) {
		j.w.logger.Warn("job still running from its last tick: this tick is skipped", "job", j.spec.Name)
	}
}

var errJobRunning = errors.New("job already running")

// runOnce runs the job unless a run is under way, and records the
// outcome.
func (j *job) runOnce(ctx context.Context) error {
	if !j.running.CompareAndSwap(false, true) {
		return errJobRunning
	}
	defer j.running.Store(false)
	start := time.Now()
	var err error
	if j.impl != nil {
		err = j.impl.Run(ctx)
	} else {
		err = j.exec()
	}
	j.mu.Lock()
	j.runs++
	j.lastRun, j.lastErr = start, err
	j.mu.Unlock()
	if err != nil {
		j.w.logger.Error("job failed", "job", j.spec.Name, "err", err)
		return err
	}
	j.w.logger.Info("job done", "job", j.spec.Name, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// RunJob runs a scheduled job now, outside its schedule, and returns its
// error; a job already running is an error.
func (w *Worker) RunJob(ctx context.Context, name string) error {
	w.mu.Lock()
	j := w.jobs[name]
	w.mu.Unlock()
	if j == nil {
		return fmt.Errorf("job %s: not scheduled", name)
	}
	if err := j.runOnce(ctx); err != nil {
		return fmt.Errorf("job %s: %w", name, err)
	}
	return nil
}

// builtinJob says whether a job plugin is one of the runtime's own (run
// by job.exec) rather than a plugin's (Plugins.Jobs).
func builtinJob(name string) bool { return name == "log-archive" || name == "log-clean" }

func (j *job) exec() error {
	switch j.spec.Plugin {
	case "log-archive":
		return j.w.forPartitions(j.spec.params.Strings("topics"), func(p *elog.Partition, _ elog.TopicConfig) error {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			run, err := p.Archive(ctx)
			if run.Segments > 0 {
				j.w.logger.Info("archived", "partition", p.String(), "segments", run.Segments, "bytes", run.Bytes)
			}
			if err != nil {
				return fmt.Errorf("archive %s: %w", p, err)
			}
			if _, err := p.ApplyRetention(); err != nil {
				return fmt.Errorf("retention %s: %w", p, err)
			}
			return nil
		})
	case "log-clean":
		return j.w.forPartitions(j.spec.params.Strings("topics"), func(p *elog.Partition, cfg elog.TopicConfig) error {
			if cfg.Cleanup == elog.CleanupCompact {
				if _, err := p.Compact(); err != nil {
					return fmt.Errorf("compact %s: %w", p, err)
				}
			}
			if _, err := p.ApplyRetention(); err != nil {
				return fmt.Errorf("retention %s: %w", p, err)
			}
			return nil
		})
	}
	return fmt.Errorf("job plugin %s has no implementation", j.spec.Plugin)
}

// forPartitions calls fn for every partition of the named topics (all
// when none), going on past failures, and joins their errors.
func (w *Worker) forPartitions(only []string, fn func(*elog.Partition, elog.TopicConfig) error) error {
	names := only
	if len(names) == 0 {
		names = w.log.Topics()
	}
	var errs []error
	for _, n := range names {
		t, err := w.log.Topic(n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for i := range t.Partitions() {
			p, err := t.Partition(i)
			if err == nil {
				err = fn(p, t.Config())
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (j *job) status() JobStatus {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := JobStatus{Name: j.spec.Name, Plugin: j.spec.Plugin, Runs: j.runs,
		Schedule: Schedule{Cron: j.spec.Schedule, NextRun: j.w.sched.Entry(j.entry).Next}}
	if !j.lastRun.IsZero() {
		t := j.lastRun
		s.Schedule.LastRun = &t
	}
	if j.lastErr != nil {
		s.LastErr = j.lastErr.Error()
	}
	return s
}
