package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/access"
	elog "github.com/eddy-cdc/eddy/log"
)

// Paths and media types of the admin API shared by server and client.
const (
	// BatchesMediaType asks the records endpoint for raw RecordBatch v2
	// bytes, with offsets in X-Eddy-* headers, instead of JSON.
	BatchesMediaType = "application/vnd.eddy.batches"
	maxBodyBytes     = 64 << 20
	maxWait          = 30 * time.Second
)

// Server is the HTTP admin API of `eddy run`: topics, records, groups
// with lag, Prometheus metrics and health checks, over a Broker.
type Server struct {
	broker Broker
	log    *slog.Logger
	mux    *http.ServeMux
	users  []access.User // when any, credentials are required everywhere but health
	door   http.Handler  // the mux behind the door policy

	worker  Connectors // optional: connectors, jobs, plugins
	catalog *connect.Catalog
}

// Option configures NewServer.
type Option func(*Server)

// WithToken requires "Authorization: Bearer <token>" on every endpoint but
// /healthz and /readyz, the token having the admin role. Default: no token.
func WithToken(token string) Option {
	return func(s *Server) {
		if token != "" {
			s.users = append(s.users, access.User{Name: "token", Token: token, Role: access.RoleWrite})
		}
	}
}

// WithUsers requires one of users' credentials (HTTP Basic or a bearer
// token) on every endpoint but /healthz and /readyz: the read role may
// GET, the admin role (access.RoleWrite) may do everything.
func WithUsers(users []access.User) Option {
	return func(s *Server) { s.users = append(s.users, users...) }
}

// NewServer builds the API over b; metrics register on a registry of
// the server's own (the Go and process collectors included).
func NewServer(b Broker, logger *slog.Logger, opts ...Option) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{broker: b, log: logger, mux: http.NewServeMux()}
	for _, o := range opts {
		o(s)
	}
	door := &access.Policy{Listener: "admin API", Users: s.users, Open: []string{"/healthz", "/readyz"}, Need: access.ReadOnly,
		Realm: "eddy", Log: logger, Deny: func(w http.ResponseWriter, status int, msg string) {
			code := "unauthorized"
			if status == http.StatusForbidden {
				code = "forbidden"
			}
			writeJSON(w, status, apiError{code, msg})
		}}
	s.door = door.Guard(s.mux)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), &logCollector{b: b})
	if s.worker != nil {
		reg.MustRegister(s.worker.Metrics().Collectors()...)
		s.routeConnectors()
	}
	m := s.mux
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	m.HandleFunc("GET /readyz", s.ready)
	m.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	m.Handle("GET /topics", noBody(s, s.listTopics))
	m.Handle("POST /topics", withBody(s, s.createTopic))
	m.Handle("GET /topics/{topic}", noBody(s, s.describeTopic))
	m.Handle("DELETE /topics/{topic}", noBody(s, s.deleteTopic))
	m.Handle("POST /topics/{topic}/restore", withBody(s, s.restoreTopic))
	m.Handle("POST /topics/{topic}/records", withBody(s, s.produce))
	m.HandleFunc("GET /topics/{topic}/partitions/{partition}/records", s.fetch)
	m.Handle("GET /topics/{topic}/partitions/{partition}/offsets", noBody(s, s.resolve))
	m.Handle("GET /groups", noBody(s, s.listGroups))
	m.Handle("GET /groups/{group}", noBody(s, s.describeGroup))
	m.Handle("POST /groups/{group}/members", withBody(s, s.join))
	m.Handle("POST /groups/{group}/members/{member}/heartbeat", withBody(s, s.heartbeat))
	m.Handle("DELETE /groups/{group}/members/{member}", noBody(s, s.leave))
	m.Handle("GET /groups/{group}/offsets", noBody(s, s.committed))
	m.Handle("POST /groups/{group}/offsets", withBody(s, s.commit))
	m.Handle("POST /groups/{group}/reset", withBody(s, s.reset))
	return s
}

// ServeHTTP serves the API behind its door policy: credentials when users
// are set, roles, and an audit line for each change.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.door.ServeHTTP(w, r) }

type apiError struct {
	ErrorCode string `json:"error_code"`
	Message   string `json:"message"`
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, code := errorStatus(err)
	if status >= 500 {
		s.log.Error("admin API request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, status, apiError{code, err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: body: %v", ErrBadRequest, err)
	}
	return nil
}

func pathInt(r *http.Request, name string) (int, error) {
	n, err := strconv.Atoi(r.PathValue(name))
	if err != nil {
		return 0, fmt.Errorf("%w: %s %q is not a number", ErrBadRequest, name, r.PathValue(name))
	}
	return n, nil
}

func queryInt(r *http.Request, name string, def int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %q is not a number", ErrBadRequest, name, v)
	}
	return n, nil
}

// withBody adapts a handler of a JSON request body: it decodes the body
// (unknown fields are errors), calls fn and writes its answer.
func withBody[Req any](s *Server, fn func(r *http.Request, req *Req) (any, int, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req Req
		if err := readJSON(r, &req); err != nil {
			s.fail(w, r, err)
			return
		}
		s.answer(w, r)(fn(r, &req))
	}
}

// noBody adapts a handler that reads only the path and query.
func noBody(s *Server, fn func(r *http.Request) (any, int, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { s.answer(w, r)(fn(r)) }
}

// answer writes a handler's result: the error, or the body (none when nil).
func (s *Server) answer(w http.ResponseWriter, r *http.Request) func(any, int, error) {
	return func(body any, status int, err error) {
		switch {
		case err != nil:
			s.fail(w, r, err)
		case body == nil:
			w.WriteHeader(status)
		default:
			writeJSON(w, status, body)
		}
	}
}

func (s *Server) listTopics(r *http.Request) (any, int, error) {
	ts, err := s.broker.ListTopics(r.Context())
	if ts == nil {
		ts = []TopicInfo{}
	}
	return ts, 200, err
}

type createTopicRequest struct {
	Name   string           `json:"name"`
	Config elog.TopicConfig `json:"config"`
}

func (s *Server) createTopic(r *http.Request, req *createTopicRequest) (any, int, error) {
	t, err := s.broker.CreateTopic(r.Context(), req.Name, req.Config)
	return t, 201, err
}

func (s *Server) describeTopic(r *http.Request) (any, int, error) {
	t, err := s.broker.DescribeTopic(r.Context(), r.PathValue("topic"))
	return t, 200, err
}

func (s *Server) deleteTopic(r *http.Request) (any, int, error) {
	return nil, 204, s.broker.DeleteTopic(r.Context(), r.PathValue("topic"))
}

type restoreTopicRequest struct {
	Store string `json:"store"`
}

func (s *Server) restoreTopic(r *http.Request, req *restoreTopicRequest) (any, int, error) {
	if req.Store == "" {
		return nil, 0, fmt.Errorf("%w: store: the name of one of the config's stores is required", ErrBadRequest)
	}
	t, err := s.broker.RestoreTopic(r.Context(), r.PathValue("topic"), req.Store)
	return t, 201, err
}

type produceRequest struct {
	Records []RecordJSON `json:"records"`
}

type produceResponse struct {
	Offsets []elog.Produced `json:"offsets"`
}

func (s *Server) produce(r *http.Request, req *produceRequest) (any, int, error) {
	if len(req.Records) == 0 {
		return nil, 0, fmt.Errorf("%w: no records", ErrBadRequest)
	}
	recs := make([]elog.Record, len(req.Records))
	for i := range req.Records {
		var err error
		if recs[i], err = req.Records[i].Record(); err != nil {
			return nil, 0, fmt.Errorf("record %d: %w", i, err)
		}
	}
	res, err := s.broker.Produce(r.Context(), r.PathValue("topic"), recs)
	return produceResponse{res}, 200, err
}

type fetchResponse struct {
	Records        []RecordJSON `json:"records"`
	NextOffset     int64        `json:"next_offset"`
	HighWatermark  int64        `json:"high_watermark"`
	LogStartOffset int64        `json:"log_start_offset"`
}

// fetch answers JSON records, or the raw batches when asked for them.
func (s *Server) fetch(w http.ResponseWriter, r *http.Request) {
	topic := r.PathValue("topic")
	res, offset, err := s.fetchBatches(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if r.Header.Get("Accept") == BatchesMediaType {
		h := w.Header()
		h.Set("Content-Type", BatchesMediaType)
		h.Set("X-Eddy-Next-Offset", strconv.FormatInt(res.NextOffset, 10))
		h.Set("X-Eddy-High-Watermark", strconv.FormatInt(res.HighWatermark, 10))
		h.Set("X-Eddy-Log-Start-Offset", strconv.FormatInt(res.LogStartOffset, 10))
		w.Write(res.Data)
		return
	}
	recs, err := elog.DecodeBatches(nil, res.Data, offset)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	partition, _ := pathInt(r, "partition")
	out := fetchResponse{Records: make([]RecordJSON, len(recs)), NextOffset: res.NextOffset, HighWatermark: res.HighWatermark, LogStartOffset: res.LogStartOffset}
	for i := range recs {
		out.Records[i] = ToRecordJSON(topic, partition, &recs[i])
	}
	writeJSON(w, 200, out)
}

func (s *Server) fetchBatches(r *http.Request) (elog.FetchResult, int64, error) {
	partition, err := pathInt(r, "partition")
	if err != nil {
		return elog.FetchResult{}, 0, err
	}
	offset, err := queryInt(r, "offset", 0)
	if err != nil {
		return elog.FetchResult{}, 0, err
	}
	maxBytes, err := queryInt(r, "max_bytes", 1<<20)
	if err != nil || maxBytes < 1 || maxBytes > maxBodyBytes {
		return elog.FetchResult{}, 0, fmt.Errorf("%w: max_bytes must be 1..%d", ErrBadRequest, maxBodyBytes)
	}
	waitMs, err := queryInt(r, "wait_ms", 0)
	if err != nil || waitMs < 0 {
		return elog.FetchResult{}, 0, fmt.Errorf("%w: wait_ms must be a number >= 0", ErrBadRequest)
	}
	wait := min(time.Duration(waitMs)*time.Millisecond, maxWait)
	res, err := s.broker.Fetch(r.Context(), r.PathValue("topic"), partition, offset, int(maxBytes), wait)
	return res, offset, err
}

type offsetResponse struct {
	Offset int64 `json:"offset"`
}

func (s *Server) resolve(r *http.Request) (any, int, error) {
	partition, err := pathInt(r, "partition")
	if err != nil {
		return nil, 0, err
	}
	spec, err := elog.ParseOffsetSpec(r.URL.Query().Get("at"))
	if err != nil {
		return nil, 0, fmt.Errorf("%w: at: %v", ErrBadRequest, err)
	}
	off, err := s.broker.Resolve(r.Context(), r.PathValue("topic"), partition, spec)
	return offsetResponse{off}, 200, err
}

func (s *Server) listGroups(r *http.Request) (any, int, error) {
	gs, err := s.broker.ListGroups(r.Context())
	if gs == nil {
		gs = []string{}
	}
	return gs, 200, err
}

func (s *Server) describeGroup(r *http.Request) (any, int, error) {
	d, err := s.broker.DescribeGroup(r.Context(), r.PathValue("group"))
	return d, 200, err
}

type joinRequest struct {
	MemberID         string   `json:"member_id"`
	ClientID         string   `json:"client_id"`
	Topics           []string `json:"topics"`
	SessionTimeoutMs int64    `json:"session_timeout_ms"`
}

func (s *Server) join(r *http.Request, req *joinRequest) (any, int, error) {
	a, err := s.broker.JoinGroup(r.Context(), r.PathValue("group"), elog.JoinRequest{
		MemberID: req.MemberID, ClientID: req.ClientID, Topics: req.Topics,
		SessionTimeout: time.Duration(req.SessionTimeoutMs) * time.Millisecond,
	})
	return a, 200, err
}

type generationRequest struct {
	Generation int `json:"generation"`
}

func (s *Server) heartbeat(r *http.Request, req *generationRequest) (any, int, error) {
	return nil, 204, s.broker.Heartbeat(r.Context(), r.PathValue("group"), r.PathValue("member"), req.Generation)
}

func (s *Server) leave(r *http.Request) (any, int, error) {
	return nil, 204, s.broker.LeaveGroup(r.Context(), r.PathValue("group"), r.PathValue("member"))
}

type partitionOffset struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
}

type commitRequest struct {
	MemberID   string            `json:"member_id"`
	Generation int               `json:"generation"`
	Offsets    []partitionOffset `json:"offsets"`
}

func (s *Server) commit(r *http.Request, req *commitRequest) (any, int, error) {
	offs := make(map[elog.TopicPartition]int64, len(req.Offsets))
	for _, o := range req.Offsets {
		offs[elog.TopicPartition{Topic: o.Topic, Partition: o.Partition}] = o.Offset
	}
	return nil, 204, s.broker.Commit(r.Context(), r.PathValue("group"), req.MemberID, req.Generation, offs)
}

type committedOffset struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	elog.OffsetCommit
}

func (s *Server) committed(r *http.Request) (any, int, error) {
	c, err := s.broker.Committed(r.Context(), r.PathValue("group"))
	out := []committedOffset{}
	for tp, v := range c {
		out = append(out, committedOffset{tp.Topic, tp.Partition, v})
	}
	return out, 200, err
}

type resetRequest struct {
	Topic string `json:"topic"`
	To    string `json:"to"`
}

func (s *Server) reset(r *http.Request, req *resetRequest) (any, int, error) {
	spec, err := elog.ParseOffsetSpec(req.To)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: to: %v", ErrBadRequest, err)
	}
	res, err := s.broker.ResetGroup(r.Context(), r.PathValue("group"), req.Topic, spec)
	out := []partitionOffset{}
	for tp, o := range res {
		out = append(out, partitionOffset{tp.Topic, tp.Partition, o})
	}
	return out, 200, err
}

// ready answers 200 while the log accepts appends everywhere, and 503
// naming each partition a disk error stopped, with the error, otherwise.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	topics, err := s.broker.ListTopics(r.Context())
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: list topics: %v\n", err)
		return
	}
	var failed []string
	for _, t := range topics {
		for _, p := range t.Partitions {
			if p.Error != "" {
				failed = append(failed, fmt.Sprintf("partition %s/%d refuses appends since %s: %s", t.Name, p.Partition, p.FailedSince.UTC().Format(time.RFC3339), p.Error))
			}
		}
	}
	if len(failed) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "not ready: the log failed on disk; restart eddy once the disk is healthy (the log recovers to its last whole batch)\n")
		for _, f := range failed {
			io.WriteString(w, f+"\n")
		}
		return
	}
	io.WriteString(w, "ready\n")
}

// logCollector reports the log's offsets, sizes and group lag at scrape time.
type logCollector struct{ b Broker }

var (
	descHW        = prometheus.NewDesc("eddy_log_high_watermark", "Offset after the last durable record.", []string{"topic", "partition"}, nil)
	descStart     = prometheus.NewDesc("eddy_log_start_offset", "First offset still held.", []string{"topic", "partition"}, nil)
	descBytes     = prometheus.NewDesc("eddy_log_bytes", "Bytes of segments on disk.", []string{"topic", "partition"}, nil)
	descSegments  = prometheus.NewDesc("eddy_log_segments", "Segments on disk.", []string{"topic", "partition"}, nil)
	descLag       = prometheus.NewDesc("eddy_group_lag", "High watermark minus committed offset.", []string{"group", "topic", "partition"}, nil)
	descHeld      = prometheus.NewDesc("eddy_log_retention_held_bytes", "Bytes retention would have deleted but keeps for sink connectors that have not consumed them (retention_protects: sinks); past retention_protect_bytes it deletes them.", []string{"topic", "partition"}, nil)
	descLocal     = prometheus.NewDesc("eddy_log_local_start_offset", "First offset held in local segments (below it the archive holds them).", []string{"topic", "partition"}, nil)
	descArchBytes = prometheus.NewDesc("eddy_archive_bytes", "Bytes of the partition's segments and indexes in its archive store.", []string{"topic", "partition", "store"}, nil)
	descArchSegs  = prometheus.NewDesc("eddy_archive_segments", "Segments of the partition in its archive store.", []string{"topic", "partition", "store"}, nil)
	descArchPend  = prometheus.NewDesc("eddy_archive_pending_segments", "Closed local segments not archived yet.", []string{"topic", "partition", "store"}, nil)
	descArchLag   = prometheus.NewDesc("eddy_archive_upload_lag_seconds", "Age of the newest record of the oldest closed segment not archived yet (0 when none waits).", []string{"topic", "partition", "store"}, nil)
	descArchWait  = prometheus.NewDesc("eddy_archive_waiting_bytes", "Local bytes past local_retention kept because the archive does not hold them yet (the store down or refusing).", []string{"topic", "partition", "store"}, nil)
	descCacheHits = prometheus.NewDesc("eddy_archive_cache_hits_total", "Chunks of archived segments read from the local cache.", nil, nil)
	descCacheMiss = prometheus.NewDesc("eddy_archive_cache_misses_total", "Chunks of archived segments read from the store.", nil, nil)
	descArchRead  = prometheus.NewDesc("eddy_archive_read_bytes_total", "Bytes read from archive stores.", nil, nil)
	descFailed    = prometheus.NewDesc("eddy_log_partition_failed", "1 while the partition refuses appends after a disk error (until the log is reopened).", []string{"topic", "partition"}, nil)
)

func (c *logCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHW, descStart, descBytes, descSegments, descLag, descHeld, descFailed, descLocal,
		descArchBytes, descArchSegs, descArchPend, descArchLag, descArchWait, descCacheHits, descCacheMiss, descArchRead} {
		ch <- d
	}
}

func (c *logCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	topics, _ := c.b.ListTopics(ctx)
	for _, t := range topics {
		for _, p := range t.Partitions {
			l := []string{t.Name, strconv.Itoa(p.Partition)}
			ch <- prometheus.MustNewConstMetric(descHW, prometheus.GaugeValue, float64(p.HighWatermark), l...)
			ch <- prometheus.MustNewConstMetric(descStart, prometheus.GaugeValue, float64(p.LogStartOffset), l...)
			ch <- prometheus.MustNewConstMetric(descBytes, prometheus.GaugeValue, float64(p.Bytes), l...)
			ch <- prometheus.MustNewConstMetric(descSegments, prometheus.GaugeValue, float64(p.Segments), l...)
			ch <- prometheus.MustNewConstMetric(descHeld, prometheus.GaugeValue, float64(p.RetentionHeldBytes), l...)
			failed := 0.0
			if p.Error != "" {
				failed = 1
			}
			ch <- prometheus.MustNewConstMetric(descFailed, prometheus.GaugeValue, failed, l...)
			ch <- prometheus.MustNewConstMetric(descLocal, prometheus.GaugeValue, float64(p.LocalStartOffset), l...)
			if a := p.Archive; a != nil {
				al := append(l, a.Store)
				lag := 0.0
				if a.PendingSegments > 0 {
					lag = max(0, time.Since(time.UnixMilli(a.OldestPendingMs)).Seconds())
				}
				ch <- prometheus.MustNewConstMetric(descArchBytes, prometheus.GaugeValue, float64(a.Bytes), al...)
				ch <- prometheus.MustNewConstMetric(descArchSegs, prometheus.GaugeValue, float64(a.Segments), al...)
				ch <- prometheus.MustNewConstMetric(descArchPend, prometheus.GaugeValue, float64(a.PendingSegments), al...)
				ch <- prometheus.MustNewConstMetric(descArchLag, prometheus.GaugeValue, lag, al...)
				ch <- prometheus.MustNewConstMetric(descArchWait, prometheus.GaugeValue, float64(a.WaitingBytes), al...)
			}
		}
	}
	if ac, ok := c.b.(interface{ ArchiveCacheStats() elog.ArchiveCacheStats }); ok {
		st := ac.ArchiveCacheStats()
		ch <- prometheus.MustNewConstMetric(descCacheHits, prometheus.CounterValue, float64(st.Hits))
		ch <- prometheus.MustNewConstMetric(descCacheMiss, prometheus.CounterValue, float64(st.Misses))
		ch <- prometheus.MustNewConstMetric(descArchRead, prometheus.CounterValue, float64(st.ReadBytes))
	}
	groups, _ := c.b.ListGroups(ctx)
	for _, g := range groups {
		d, err := c.b.DescribeGroup(ctx, g)
		if err != nil {
			continue
		}
		for _, o := range d.Offsets {
			if o.Lag >= 0 {
				ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(o.Lag), g, o.Topic, strconv.Itoa(o.Partition))
			}
		}
	}
}
