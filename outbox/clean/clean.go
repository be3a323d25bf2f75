// Package clean is the outbox-clean job: it deletes outbox rows once
// their capture is durable in the log, and never a row whose change the
// log does not hold.
//
// A run opens a snapshot of the database and, inside it, reads a fence:
// an upstream position at or after the commit of every row the snapshot
// can see (PostgreSQL's WAL insert position; MySQL's binlog end, read
// after the snapshot began, so that every transaction it sees is written
// before it). It then waits until the connector capturing the table has
// acknowledged past the fence — postgres-source confirms its slot, and
// mysql-source stores its position, only once what comes before is
// durable in the log — and deletes the rows the snapshot sees, by id, in
// batches that each commit on their own. A row committed after the
// snapshot is invisible to it and waits for a later run, whatever its
// capture. The deletes are captured too; the outbox transform drops them.
package clean

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/eddy-cdc/eddy/connect"
)

// Job is the outbox-clean job; New builds it.
type Job struct {
	connector string
	table     string
	idColumn  string
	dsn       string // "": the connector's
	batch     int
	maxRows   int
	wait      time.Duration
	log       *slog.Logger
	peers     func() []connect.Peer
	position  func(string) ([]byte, bool)

	pending prometheus.Gauge
	oldest  prometheus.Gauge
	cleaned prometheus.Counter

	mu   sync.Mutex
	last Run
}

// Run is what one run did.
type Run struct {
	Cleaned int64
	// Pending is the rows left in the table after the run: committed
	// after its snapshot, beyond max_rows, or not yet captured.
	Pending int64
	// Captured says capture passed the run's fence within wait (true as
	// well when there was nothing to clean).
	Captured bool
}

// New builds the job from validated params.
func New(p connect.Params, env connect.JobEnv) (connect.Job, error) {
	j := &Job{connector: p.String("connector"), table: p.String("table"), idColumn: p.String("id_column"), dsn: p.String("dsn"),
		batch: int(p.Int("batch_size")), maxRows: int(p.Int("max_rows")), wait: p.Duration("wait"),
		log: env.Logger, peers: env.Peers, position: env.SourcePosition}
	if j.log == nil {
		j.log = slog.New(slog.DiscardHandler)
	}
	if j.table == "" || strings.Count(j.table, ".") > 1 {
		return nil, fmt.Errorf("line %d: table: %q: write table or schema.table", p.Line("table"), j.table)
	}
	if j.idColumn == "" {
		return nil, fmt.Errorf("line %d: id_column: empty", p.Line("id_column"))
	}
	if j.wait < 0 {
		return nil, fmt.Errorf("line %d: wait: %s is negative", p.Line("wait"), j.wait)
	}
	if j.peers == nil || j.position == nil {
		return nil, errors.New("outbox-clean needs the worker's connectors and their positions")
	}
	if j.peer() == nil {
		return nil, fmt.Errorf("line %d: connector: %q is not a configured connector", p.Line("connector"), j.connector)
	}
	labels := prometheus.Labels{"job": env.Job}
	j.pending = prometheus.NewGauge(prometheus.GaugeOpts{Name: "eddy_outbox_pending_rows", ConstLabels: labels,
		Help: "Outbox rows left after the cleanup job's last run: committed after its snapshot, beyond max_rows, or not yet durably captured."})
	j.oldest = prometheus.NewGauge(prometheus.GaugeOpts{Name: "eddy_outbox_oldest_pending_seconds", ConstLabels: labels,
		Help: "Age of the oldest outbox row left after the cleanup job's last run, from its UUIDv7 id (0 when none, or when ids are not UUIDv7): grows while capture is behind."})
	j.cleaned = prometheus.NewCounter(prometheus.CounterOpts{Name: "eddy_outbox_cleaned_rows_total", ConstLabels: labels,
		Help: "Outbox rows the cleanup job deleted after their capture was durable."})
	return j, nil
}

// Describe and Collect serve the job's series (prometheus.Collector).
func (j *Job) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range []prometheus.Collector{j.pending, j.oldest, j.cleaned} {
		c.Describe(ch)
	}
}

// Collect gathers the job's series.
func (j *Job) Collect(ch chan<- prometheus.Metric) {
	for _, c := range []prometheus.Collector{j.pending, j.oldest, j.cleaned} {
		c.Collect(ch)
	}
}

// Last is what the last run did.
func (j *Job) Last() Run {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.last
}

// peer is the connector the job cleans behind, nil when it is not
// configured (any more).
func (j *Job) peer() *connect.Peer {
	for _, p := range j.peers() {
		if p.Name == j.connector {
			return &p
		}
	}
	return nil
}

// store is one database's side of a run.
type store interface {
	// begin opens the snapshot and reads the fence inside it.
	begin(ctx context.Context) error
	// page is up to n ids the snapshot sees after after ("" first), in
	// id order.
	page(ctx context.Context, after string, n int) ([]string, error)
	// captured says whether the connector has acknowledged past the fence.
	captured(ctx context.Context) (bool, error)
	// remove deletes rows by id, in a transaction of its own.
	remove(ctx context.Context, ids []string) (int64, error)
	// left counts the rows in the table now, outside the snapshot, and
	// finds the least id.
	left(ctx context.Context) (n int64, least string, err error)
	fence() string
	close()
}

// Run cleans once.
func (j *Job) Run(ctx context.Context) error {
	peer := j.peer()
	if peer == nil {
		return fmt.Errorf("outbox-clean: connector %s is not configured", j.connector)
	}
	var st store
	var err error
	switch peer.Plugin {
	case "postgres-source":
		st, err = openPostgres(ctx, j, *peer)
	case "mysql-source":
		st, err = openMySQL(ctx, j, *peer)
	default:
		return fmt.Errorf("outbox-clean: connector %s is a %s: the job cleans behind postgres-source or mysql-source", j.connector, peer.Plugin)
	}
	if err != nil {
		return fmt.Errorf("outbox-clean: %w", err)
	}
	defer st.close()
	run, err := j.run(ctx, st)
	j.mu.Lock()
	j.last = run
	j.mu.Unlock()
	if err != nil {
		return fmt.Errorf("outbox-clean %s: %w", j.table, err)
	}
	return nil
}

func (j *Job) run(ctx context.Context, st store) (Run, error) {
	var run Run
	if err := st.begin(ctx); err != nil {
		return run, err
	}
	ids, err := st.page(ctx, "", min(j.batch, j.maxRows))
	if err != nil {
		return run, err
	}
	if len(ids) > 0 {
		deadline := time.Now().Add(j.wait)
		for {
			ok, err := st.captured(ctx)
			if err != nil {
				return run, err
			}
			if ok {
				run.Captured = true
				break
			}
			if time.Now().After(deadline) {
				j.log.Info("capture has not passed the cleanup's snapshot yet: its rows wait for the next run",
					"connector", j.connector, "fence", st.fence(), "waited", j.wait)
				break
			}
			select {
			case <-ctx.Done():
				return run, ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	} else {
		run.Captured = true
	}
	for run.Captured && len(ids) > 0 {
		n, err := st.remove(ctx, ids)
		run.Cleaned += n
		j.cleaned.Add(float64(n))
		if err != nil {
			return run, err
		}
		room := j.maxRows - int(run.Cleaned)
		if room <= 0 {
			break
		}
		if ids, err = st.page(ctx, ids[len(ids)-1], min(j.batch, room)); err != nil {
			return run, err
		}
	}
	n, least, err := st.left(ctx)
	if err != nil {
		return run, err
	}
	run.Pending = n
	j.pending.Set(float64(n))
	j.oldest.Set(age(least))
	if run.Cleaned > 0 {
		j.log.Info("outbox rows cleaned", "rows", run.Cleaned, "left", n, "fence", st.fence())
	}
	return run, nil
}

// age is how old a UUIDv7 id is, in seconds; 0 for another id.
func age(id string) float64 {
	u, err := uuid.Parse(id)
	if err != nil || u.Version() != 7 {
		return 0
	}
	sec, nsec := u.Time().UnixTime()
	return max(time.Since(time.Unix(sec, nsec)).Seconds(), 0)
}
