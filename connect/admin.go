package connect

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

// AdminServer is the HTTP admin API of `eddy run`: topics, records, groups
// with lag, Prometheus metrics and health checks, over a Broker.
type AdminServer struct {
	broker Broker
	log    *slog.Logger
	mux    *http.ServeMux
}

// NewAdminServer builds the API over b; metrics register on a registry of
// the server's own (the Go and process collectors included).
func NewAdminServer(b Broker, logger *slog.Logger) *AdminServer {
	s := &AdminServer{broker: b, log: logger, mux: http.NewServeMux()}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), &logCollector{b: b})
	m := s.mux
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	m.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ready\n") })
	m.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	m.HandleFunc("GET /topics", s.listTopics)
	m.HandleFunc("POST /topics", s.createTopic)
	m.HandleFunc("GET /topics/{topic}", s.describeTopic)
	m.HandleFunc("DELETE /topics/{topic}", s.deleteTopic)
	m.HandleFunc("POST /topics/{topic}/records", s.produce)
	m.HandleFunc("GET /topics/{topic}/partitions/{partition}/records", s.fetch)
	m.HandleFunc("GET /topics/{topic}/partitions/{partition}/offsets", s.resolve)
	m.HandleFunc("GET /groups", s.listGroups)
	m.HandleFunc("GET /groups/{group}", s.describeGroup)
	m.HandleFunc("POST /groups/{group}/members", s.join)
	m.HandleFunc("POST /groups/{group}/members/{member}/heartbeat", s.heartbeat)
	m.HandleFunc("DELETE /groups/{group}/members/{member}", s.leave)
	m.HandleFunc("GET /groups/{group}/offsets", s.committed)
	m.HandleFunc("POST /groups/{group}/offsets", s.commit)
	m.HandleFunc("POST /groups/{group}/reset", s.reset)
	return s
}

// ServeHTTP serves the API.
func (s *AdminServer) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

type apiError struct {
	ErrorCode string `json:"error_code"`
	Message   string `json:"message"`
}

func (s *AdminServer) fail(w http.ResponseWriter, r *http.Request, err error) {
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

func (s *AdminServer) listTopics(w http.ResponseWriter, r *http.Request) {
	ts, err := s.broker.ListTopics(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if ts == nil {
		ts = []TopicInfo{}
	}
	writeJSON(w, 200, ts)
}

type createTopicRequest struct {
	Name   string           `json:"name"`
	Config elog.TopicConfig `json:"config"`
}

func (s *AdminServer) createTopic(w http.ResponseWriter, r *http.Request) {
	var req createTopicRequest
	if err := readJSON(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	t, err := s.broker.CreateTopic(r.Context(), req.Name, req.Config)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, 201, t)
}

func (s *AdminServer) describeTopic(w http.ResponseWriter, r *http.Request) {
	t, err := s.broker.DescribeTopic(r.Context(), r.PathValue("topic"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, 200, t)
}

func (s *AdminServer) deleteTopic(w http.ResponseWriter, r *http.Request) {
	if err := s.broker.DeleteTopic(r.Context(), r.PathValue("topic")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(204)
}

type produceRequest struct {
	Records []RecordJSON `json:"records"`
}

type produceResponse struct {
	Offsets []elog.Produced `json:"offsets"`
}

func (s *AdminServer) produce(w http.ResponseWriter, r *http.Request) {
	var req produceRequest
	if err := readJSON(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if len(req.Records) == 0 {
		s.fail(w, r, fmt.Errorf("%w: no records", ErrBadRequest))
		return
	}
	recs := make([]elog.Record, len(req.Records))
	for i := range req.Records {
		var err error
		if recs[i], err = req.Records[i].Record(); err != nil {
			s.fail(w, r, fmt.Errorf("record %d: %w", i, err))
			return
		}
	}
	res, err := s.broker.Produce(r.Context(), r.PathValue("topic"), recs)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, 200, produceResponse{res})
}

type fetchResponse struct {
	Records        []RecordJSON `json:"records"`
	NextOffset     int64        `json:"next_offset"`
	HighWatermark  int64        `json:"high_watermark"`
	LogStartOffset int64        `json:"log_start_offset"`
}

func (s *AdminServer) fetch(w http.ResponseWriter, r *http.Request) {
	topic := r.PathValue("topic")
	partition, err := pathInt(r, "partition")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	offset, err := queryInt(r, "offset", 0)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	maxBytes, err := queryInt(r, "max_bytes", 1<<20)
	if err != nil || maxBytes < 1 || maxBytes > maxBodyBytes {
		s.fail(w, r, fmt.Errorf("%w: max_bytes must be 1..%d", ErrBadRequest, maxBodyBytes))
		return
	}
	waitMs, err := queryInt(r, "wait_ms", 0)
	if err != nil || waitMs < 0 {
		s.fail(w, r, fmt.Errorf("%w: wait_ms must be a number >= 0", ErrBadRequest))
		return
	}
	wait := min(time.Duration(waitMs)*time.Millisecond, maxWait)
	res, err := s.broker.Fetch(r.Context(), topic, partition, offset, int(maxBytes), wait)
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
	out := fetchResponse{Records: make([]RecordJSON, len(recs)), NextOffset: res.NextOffset, HighWatermark: res.HighWatermark, LogStartOffset: res.LogStartOffset}
	for i := range recs {
		out.Records[i] = ToRecordJSON(topic, partition, &recs[i])
	}
	writeJSON(w, 200, out)
}

type offsetResponse struct {
	Offset int64 `json:"offset"`
}

func (s *AdminServer) resolve(w http.ResponseWriter, r *http.Request) {
	partition, err := pathInt(r, "partition")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	spec, err := elog.ParseOffsetSpec(r.URL.Query().Get("at"))
	if err != nil {
		s.fail(w, r, fmt.Errorf("%w: at: %v", ErrBadRequest, err))
		return
	}
	off, err := s.broker.Resolve(r.Context(), r.PathValue("topic"), partition, spec)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, 200, offsetResponse{off})
}

func (s *AdminServer) listGroups(w http.ResponseWriter, r *http.Request) {
	gs, err := s.broker.ListGroups(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if gs == nil {
		gs = []string{}
	}
	writeJSON(w, 200, gs)
}

func (s *AdminServer) describeGroup(w http.ResponseWriter, r *http.Request) {
	d, err := s.broker.DescribeGroup(r.Context(), r.PathValue("group"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, 200, d)
}

type joinRequest struct {
	MemberID         string   `json:"member_id"`
	ClientID         string   `json:"client_id"`
	Topics           []string `json:"topics"`
	SessionTimeoutMs int64    `json:"session_timeout_ms"`
}

func (s *AdminServer) join(w http.ResponseWriter, r *http.Request) {
	var req joinRequest
	if err := readJSON(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	a, err := s.broker.JoinGroup(r.Context(), r.PathValue("group"), elog.JoinRequest{
		MemberID: req.MemberID, ClientID: req.ClientID, Topics: req.Topics,
		SessionTimeout: time.Duration(req.SessionTimeoutMs) * time.Millisecond,
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, 200, a)
}

type generationRequest struct {
	Generation int `json:"generation"`
}

func (s *AdminServer) heartbeat(w http.ResponseWriter, r *http.Request) {
	var req generationRequest
	if err := readJSON(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.broker.Heartbeat(r.Context(), r.PathValue("group"), r.PathValue("member"), req.Generation); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(204)
}

func (s *AdminServer) leave(w http.ResponseWriter, r *http.Request) {
	if err := s.broker.LeaveGroup(r.Context(), r.PathValue("group"), r.PathValue("member")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(204)
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

func (s *AdminServer) commit(w http.ResponseWriter, r *http.Request) {
	var req commitRequest
	if err := readJSON(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	offs := make(map[elog.TopicPartition]int64, len(req.Offsets))
	for _, o := range req.Offsets {
		offs[elog.TopicPartition{Topic: o.Topic, Partition: o.Partition}] = o.Offset
	}
	if err := s.broker.Commit(r.Context(), r.PathValue("group"), req.MemberID, req.Generation, offs); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(204)
}

type committedOffset struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	elog.OffsetCommit
}

func (s *AdminServer) committed(w http.ResponseWriter, r *http.Request) {
	c, err := s.broker.Committed(r.Context(), r.PathValue("group"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := []committedOffset{}
	for tp, v := range c {
		out = append(out, committedOffset{tp.Topic, tp.Partition, v})
	}
	writeJSON(w, 200, out)
}

type resetRequest struct {
	Topic string `json:"topic"`
	To    string `json:"to"`
}

func (s *AdminServer) reset(w http.ResponseWriter, r *http.Request) {
	var req resetRequest
	if err := readJSON(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	spec, err := elog.ParseOffsetSpec(req.To)
	if err != nil {
		s.fail(w, r, fmt.Errorf("%w: to: %v", ErrBadRequest, err))
		return
	}
	res, err := s.broker.ResetGroup(r.Context(), r.PathValue("group"), req.Topic, spec)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := []partitionOffset{}
	for tp, o := range res {
		out = append(out, partitionOffset{tp.Topic, tp.Partition, o})
	}
	writeJSON(w, 200, out)
}

// logCollector reports the log's offsets, sizes and group lag at scrape time.
type logCollector struct{ b Broker }

var (
	descHW       = prometheus.NewDesc("eddy_log_high_watermark", "Offset after the last durable record.", []string{"topic", "partition"}, nil)
	descStart    = prometheus.NewDesc("eddy_log_start_offset", "First offset still held.", []string{"topic", "partition"}, nil)
	descBytes    = prometheus.NewDesc("eddy_log_bytes", "Bytes of segments on disk.", []string{"topic", "partition"}, nil)
	descSegments = prometheus.NewDesc("eddy_log_segments", "Segments on disk.", []string{"topic", "partition"}, nil)
	descLag      = prometheus.NewDesc("eddy_group_lag", "High watermark minus committed offset.", []string{"group", "topic", "partition"}, nil)
)

func (c *logCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHW, descStart, descBytes, descSegments, descLag} {
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
		}
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
