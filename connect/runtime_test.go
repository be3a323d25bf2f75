package connect_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-cdc/eddy/admin"
	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/datagencheck"
	elog "github.com/eddy-cdc/eddy/log"
	"github.com/eddy-cdc/eddy/registry"
	"github.com/eddy-cdc/eddy/sinks/file"
	"github.com/eddy-cdc/eddy/sources/datagen"
)

// testCatalog is the built-in catalog plus test-sink, a sink of these
// tests that rejects some records and takes a secret.
func testCatalog(t testing.TB) *connect.Catalog {
	t.Helper()
	text := string(mustRead(t, "../plugins.yaml")) + `
  - name: test-sink
    kind: sink
    description: Records what it gets; rejects records whose key id is divisible by reject_modulo.
    params:
      - name: reject_modulo
        type: int
        default: 0
        doc: Reject keys divisible by this (0 rejects nothing).
      - name: password
        type: string
        default: ""
        secret: true
        doc: A secret that must never be shown.
  - name: raw-sink
    kind: sink
    description: Records what it gets, taking keys and values as Avro bytes.
    params:
      - name: fill
        type: int
        default: 0
        doc: Records a batch should hold (BatchingSink).
      - name: linger
        type: duration
        default: 0s
        doc: How long the task may wait to fill a batch.
  - name: buffer-sink
    kind: sink
    description: Holds records and stores them every so many of a partition, as an object store's sink stores files (BufferingSink).
    params:
      - name: every
        type: int
        default: 50
        doc: Records of a partition per stored file.
  - name: flaky-source
    kind: source
    description: Fails its first polls, then hands out one record a poll.
    params:
      - name: failures
        type: int
        default: 3
        doc: Polls that fail, over all restarts.
  - name: replay-source
    kind: source
    description: Hands out records the test made beforehand, in batches, so a benchmark measures the runtime without a generator.
    params:
      - name: batch_size
        type: int
        default: 1000
        doc: Records per batch.
`
	cat, err := connect.ParseCatalog("plugins.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testSink keeps what it is given.
type testSink struct {
	mod int64
	mu  *sync.Mutex
	got *[]connect.Record
}

func (s *testSink) Open(context.Context) error { return nil }
func (s *testSink) Close() error               { return nil }
func (s *testSink) Write(_ context.Context, recs []connect.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range recs {
		if id, ok := r.Key.(map[string]any)["id"].(int64); ok && s.mod > 0 && id%s.mod == 0 && r.Value != nil {
			return &connect.RecordError{Index: i, Err: fmt.Errorf("id %d is divisible by %d", id, s.mod)}
		}
		*s.got = append(*s.got, r)
	}
	return nil
}

// bufferSink holds the records it takes and stores them every records of
// a partition at a time, as a file, into h.stored, which outlives it as an
// object store does; while h.storeFailures is above 0 a store fails (the
// store is away) after the Write took its records.
type bufferSink struct {
	h     *harness
	every int
	held  map[elog.TopicPartition][]int64
	next  map[elog.TopicPartition]int64
}

func (s *bufferSink) Open(context.Context) error { return nil }
func (s *bufferSink) Close() error               { return nil }

func (s *bufferSink) Assign(from map[elog.TopicPartition]int64) {
	s.held, s.next = map[elog.TopicPartition][]int64{}, maps.Clone(from)
}

func (s *bufferSink) Holding(tp elog.TopicPartition) (int64, bool) {
	if h := s.held[tp]; len(h) > 0 {
		return h[0], true
	}
	return 0, false
}

func (s *bufferSink) Write(_ context.Context, recs []connect.Record) error {
	for _, r := range recs {
		tp := elog.TopicPartition{Topic: r.Topic, Partition: r.Partition}
		if r.Offset < s.next[tp] {
			continue // taken already: a retried Write
		}
		s.held[tp], s.next[tp] = append(s.held[tp], r.Offset), r.Offset+1
	}
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	for tp, held := range s.held {
		for len(held) >= s.every {
			if s.h.storeFailures > 0 {
				s.h.storeFailures--
				return errors.New("the store is away")
			}
			if s.h.stored == nil {
				s.h.stored = map[elog.TopicPartition][]int64{}
			}
			s.h.stored[tp] = append(s.h.stored[tp], held[:s.every]...)
			held = held[s.every:]
			s.held[tp] = held
		}
	}
	return nil
}

// rawSink keeps what it is given, decoding the raw keys and values as it
// takes them (their bytes are valid only during Write); a key or value
// that is not raw is an error.
type rawSink struct {
	mu     *sync.Mutex
	got    *[]connect.Record
	writes *[]int // the records of each Write
	fill   int
	linger time.Duration
}

func (s *rawSink) Batching() (int, time.Duration) { return s.fill, s.linger }

func (s *rawSink) RawValues() bool            { return true }
func (s *rawSink) Open(context.Context) error { return nil }
func (s *rawSink) Close() error               { return nil }
func (s *rawSink) Write(_ context.Context, recs []connect.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	*s.writes = append(*s.writes, len(recs))
	for _, r := range recs {
		for _, v := range []*any{&r.Key, &r.Value} {
			if *v == nil {
				continue
			}
			av, ok := (*v).(*connect.AvroValue)
			if !ok {
				return fmt.Errorf("offset %d: a %T, not raw Avro", r.Offset, *v)
			}
			d, err := av.Decode()
			if err != nil {
				return err
			}
			*v = d
		}
		*s.got = append(*s.got, r)
	}
	return nil
}

type harness struct {
	replay        []connect.Record // what replay-source hands out
	polls         int              // flaky-source's polls over all its lives
	dir           string
	log           *elog.Log
	reg           *registry.Registry
	w             *connect.Worker
	cfg           *connect.Config
	cat           *connect.Catalog
	mu            sync.Mutex
	sunk          []connect.Record
	writes        []int                           // raw-sink's Write sizes
	stored        map[elog.TopicPartition][]int64 // buffer-sink's store: the offsets of its files, over restarts
	storeFailures int                             // buffer-sink's stores still to fail, over restarts
	fault         elog.FaultFunc                  // when set, the log's file operations consult it (setFault)
}

// setFault makes the log's file operations consult fn from now on (nil:
// none).
func (h *harness) setFault(fn elog.FaultFunc) {
	h.mu.Lock()
	h.fault = fn
	h.mu.Unlock()
}

func (h *harness) injectFault(op elog.FileOp, path string) error {
	h.mu.Lock()
	fn := h.fault
	h.mu.Unlock()
	if fn == nil {
		return nil
	}
	return fn(op, path)
}

// start opens a log in dir and runs the connectors of yaml (data_dir is
// added).
func start(t testing.TB, dir, yaml string, replay ...connect.Record) *harness {
	t.Helper()
	h := &harness{dir: dir, cat: testCatalog(t), replay: replay, stored: map[elog.TopicPartition][]int64{}}
	path := filepath.Join(dir, "eddy.yaml")
	if err := os.WriteFile(path, []byte("data_dir: "+filepath.Join(dir, "data")+"\n"+yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := connect.LoadConfigWith(path, h.cat)
	if err != nil {
		t.Fatal(err)
	}
	h.cfg = cfg
	if h.log, err = elog.Open(cfg.DataDir, elog.WithDefaults(cfg.LogDefaults()), elog.WithFaults(h.injectFault)); err != nil {
		t.Fatal(err)
	}
	for _, tp := range cfg.Topics { // declared topics, as eddy run makes them
		tc, _ := tp.TopicConfig()
		if _, err := h.log.EnsureTopic(tp.Name, tc); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	if h.reg, err = registry.Open(ctx, h.log); err != nil {
		t.Fatal(err)
	}
	plugins := connect.Plugins{
		Sources: map[string]func(connect.Params, connect.Env) (connect.Source, error){
			"datagen-source": datagen.New,
			"flaky-source": func(p connect.Params, _ connect.Env) (connect.Source, error) {
				return &flakySource{h: h, failures: int(p.Int("failures"))}, nil
			},
			"replay-source": func(p connect.Params, _ connect.Env) (connect.Source, error) {
				return &replaySource{recs: h.replay, batch: int(p.Int("batch_size"))}, nil
			},
		},
		Sinks: map[string]func(connect.Params, connect.Env) (connect.Sink, error){
			"file-sink": file.New,
			"test-sink": func(p connect.Params, _ connect.Env) (connect.Sink, error) {
				return &testSink{mod: p.Int("reject_modulo"), mu: &h.mu, got: &h.sunk}, nil
			},
			"buffer-sink": func(p connect.Params, _ connect.Env) (connect.Sink, error) {
				return &bufferSink{h: h, every: int(p.Int("every"))}, nil
			},
			"raw-sink": func(p connect.Params, _ connect.Env) (connect.Sink, error) {
				return &rawSink{mu: &h.mu, got: &h.sunk, writes: &h.writes, fill: int(p.Int("fill")), linger: p.Duration("linger")}, nil
			},
		},
	}
	wopts := []connect.WorkerOption{connect.WithPoisonedFetches()}
	if protect, bound := cfg.RetentionProtection(); protect { // as eddy run does
		wopts = append(wopts, connect.WithRetentionProtection(bound))
	}
	if h.w, err = connect.NewWorker(ctx, h.log, registry.NewSerde(registry.Local(h.reg)), plugins, wopts...); err != nil {
		t.Fatal(err)
	}
	for _, c := range cfg.Connectors {
		if err := h.w.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	for _, j := range cfg.Jobs {
		if err := h.w.AddJob(j); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { h.stop(t) })
	return h
}

func (h *harness) stop(t testing.TB) {
	if h.w == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.w.Close(ctx); err != nil {
		t.Error(err)
	}
	h.log.Close()
	h.w = nil
}

func (h *harness) params(t testing.TB, name string) connect.Params {
	for _, c := range h.cfg.Connectors {
		if c.Name == name {
			return c.Params()
		}
	}
	t.Fatalf("no connector %s", name)
	return connect.Params{}
}

func waitFor(t testing.TB, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func taskState(t *testing.T, w *connect.Worker, name string) (string, string) {
	st, err := w.Status(name)
	if err != nil {
		t.Fatal(err)
	}
	return st.Tasks[0].State, st.Tasks[0].Trace
}

func fileLines(path string) int {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), "\n")
}

const genSink = `
connectors:
  - name: gen
    plugin: datagen-source
    config: {rate: 0, max_events: %d, keys: 37, tables: [orders, customers], batch_size: 256, topic_prefix: t}
  - name: out
    plugin: file-sink
    topics: [t.public.orders, t.public.customers]
    config: {path: %s}
`

// datagen -> log (Avro, or JSON) -> file: every event exactly once, in
// per-key order, and the offsets of both connectors where they should be.
func TestDatagenToFile(t *testing.T) {
	for _, format := range []string{"avro", "json"} {
		t.Run(format, func(t *testing.T) { testDatagenToFile(t, format) })
	}
}

func testDatagenToFile(t *testing.T, format string) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	const n = 3000
	h := start(t, dir, strings.Replace(fmt.Sprintf(genSink, n, out), "topic_prefix: t}", "topic_prefix: t, format: "+format+"}", 1))
	want, err := datagencheck.Expected(h.params(t, "gen"), n)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, w := range want {
		total += len(w)
	}
	waitFor(t, "the file sink to catch up", 30*time.Second, func() bool { return fileLines(out) >= total })
	if err := datagencheck.Verify(out, h.params(t, "gen"), n); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"gen", "out"} {
		if s, tr := taskState(t, h.w, name); s != connect.StateRunning {
			t.Fatalf("%s: %s %s", name, s, tr)
		}
	}
	// The source's stored position is its last event; the sink's group has
	// committed the end of both topics.
	o, err := h.w.Offsets("gen")
	if err != nil || len(o.Offsets) != 1 {
		t.Fatalf("gen offsets: %+v %v", o, err)
	}
	waitFor(t, "the sink's commits", 10*time.Second, func() bool {
		o, _ := h.w.Offsets("out")
		var sum int64
		for _, e := range o.Offsets {
			sum += e.Offset["kafka_offset"].(int64)
		}
		return sum == int64(total)
	})
	// The records carry their connector and source position.
	tp, _ := h.log.Topic("t.public.orders")
	p, _ := tp.Partition(0)
	res, _ := p.Fetch(0, 1<<16)
	recs, _ := elog.DecodeBatches(nil, res.Data, 0)
	if len(recs) == 0 || string(header(recs[0], connect.HeaderConnector)) != "gen" || len(header(recs[0], connect.HeaderPosition)) != 9 {
		t.Fatalf("first record's headers: %+v", recs[0].Headers)
	}
	if avro := recs[0].Value[0] == 0; avro != (format == "avro") {
		t.Fatalf("format %s, but the value starts with %q", format, recs[0].Value[:8])
	}
}

// lastEvent is the datagen event number of a stored position (-1 when none:
// a new topic's ends are stored before the first position).
func lastEvent(o connect.ConnectorOffsets) int {
	if len(o.Offsets) == 0 {
		return -1
	}
	pos, _ := o.Offsets[0].Offset["position"].([]byte)
	if len(pos) < 8 {
		return -1
	}
	return int(binary.BigEndian.Uint64(pos))
}

func header(r elog.Record, k string) []byte {
	for _, h := range r.Headers {
		if h.Key == k {
			return h.Value
		}
	}
	return nil
}

// After a crash between the append and the storing of its position, the
// log holds records past the stored position: a restart regenerates them
// and must skip them, appending nothing twice.
func TestSourceRestartSkipsWhatTheLogHolds(t *testing.T) {
	dir := t.TempDir()
	const n = 1000
	yaml := fmt.Sprintf(genSink, n, filepath.Join(dir, "out.jsonl"))
	h := start(t, dir, yaml)
	hw := func() (sum int64) {
		for _, name := range []string{"t.public.orders", "t.public.customers"} {
			tp, err := h.log.Topic(name)
			if err != nil {
				return -1
			}
			p, _ := tp.Partition(0)
			sum += p.HighWatermark()
		}
		return sum
	}
	var want int64
	waitFor(t, "the source to finish", 30*time.Second, func() bool {
		o, _ := h.w.Offsets("gen")
		if len(o.Offsets) == 0 {
			return false
		}
		want = hw()
		return lastEvent(o) == n-1
	})
	h.stop(t)

	// Rewind the stored position to event 199, as if the last batches had
	// been appended but their positions never stored.
	l, err := elog.Open(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	ot, _ := l.Topic(connect.OffsetsTopic)
	if _, err := ot.Produce(context.Background(), []elog.Record{{
		Key:   []byte(`["gen",{"task":0}]`),
		Value: []byte(`{"position":"AAAAAAAAAMcA","ends":{"t.public.orders":[0],"t.public.customers":[0]}}`),
	}}); err != nil {
		t.Fatal(err)
	}
	l.Close()

	h = start(t, dir, yaml)
	waitFor(t, "the source to catch up again", 30*time.Second, func() bool {
		o, _ := h.w.Offsets("gen")
		return lastEvent(o) == n-1
	})
	if got := hw(); got != want {
		t.Fatalf("the log holds %d records after the restart, %d before: records were appended twice", got, want)
	}
	if err := datagencheck.Verify(filepath.Join(dir, "out.jsonl"), h.params(t, "gen"), n); err != nil {
		waitFor(t, "the sink", 10*time.Second, func() bool { return datagencheck.Verify(filepath.Join(dir, "out.jsonl"), h.params(t, "gen"), n) == nil })
	}
}

const dlqYAML = `
connectors:
  - name: gen
    plugin: datagen-source
    config: {rate: 0, max_events: %d, keys: 50, tables: [orders], topic_prefix: d}
  - name: picky
    plugin: test-sink
    topics: [d.public.orders]
    config: {reject_modulo: 7, password: hunter2}
    errors: %s
`

// A sink rejecting some records under tolerance all: exactly those go to
// the dead-letter topic, with the original bytes and the error headers.
func TestSinkDeadLetters(t *testing.T) {
	dir := t.TempDir()
	const n = 500
	h := start(t, dir, fmt.Sprintf(dlqYAML, n, "{tolerance: all, dead_letter_topic: dlq, log: true}"))
	// Expected rejections: non-tombstone events whose key is divisible by 7.
	var rejected, accepted int
	for i := range n {
		key := i % 50
		round := i / 50
		deleted := round%10 == 9
		if key%7 == 0 {
			rejected++
		} else {
			accepted++
		}
		if deleted {
			accepted++ // the tombstone passes
		}
	}
	waitFor(t, "the sink to take every record", 30*time.Second, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.sunk) >= accepted
	})
	dt, err := h.log.Topic("dlq")
	if err != nil {
		t.Fatal(err)
	}
	dp, _ := dt.Partition(0)
	waitFor(t, "the dead letters", 10*time.Second, func() bool { return dp.HighWatermark() == int64(rejected) })
	res, _ := dp.Fetch(0, 16<<20)
	dead, _ := elog.DecodeBatches(nil, res.Data, 0)
	src, _ := h.log.Topic("d.public.orders")
	sp, _ := src.Partition(0)
	for _, d := range dead {
		hd := map[string]string{}
		for _, x := range d.Headers {
			hd[x.Key] = string(x.Value)
		}
		if hd[connect.HeaderErrTopic] != "d.public.orders" || hd[connect.HeaderErrConnector] != "picky" ||
			hd[connect.HeaderErrStage] != "TASK_PUT" || !strings.Contains(hd[connect.HeaderErrMessage], "divisible by 7") ||
			hd[connect.HeaderErrClass] == "" || hd[connect.HeaderErrStack] == "" || hd[connect.HeaderErrPartition] != "0" {
			t.Fatalf("dead letter headers: %v", hd)
		}
		var off int64
		fmt.Sscan(hd[connect.HeaderErrOffset], &off)
		r, _ := sp.Fetch(off, 1<<20)
		orig, _ := elog.DecodeBatches(nil, r.Data, off)
		if string(orig[0].Value) != string(d.Value) || string(orig[0].Key) != string(d.Key) {
			t.Fatalf("dead letter of offset %d does not hold the original key and value", off)
		}
	}
	h.mu.Lock()
	for _, r := range h.sunk {
		if id := r.Key.(map[string]any)["id"].(int64); id%7 == 0 && r.Value != nil {
			t.Fatalf("the sink got rejected key %d", id)
		}
	}
	h.mu.Unlock()
	if s, tr := taskState(t, h.w, "picky"); s != connect.StateRunning {
		t.Fatalf("picky: %s %s", s, tr)
	}
}

// Under tolerance none the first rejected record fails the task, with the
// error in its status, and the other connectors keep running.
func TestSinkFailsUnderToleranceNone(t *testing.T) {
	dir := t.TempDir()
	h := start(t, dir, fmt.Sprintf(dlqYAML, 200, "{tolerance: none}"))
	waitFor(t, "the task to fail", 30*time.Second, func() bool {
		s, _ := taskState(t, h.w, "picky")
		return s == connect.StateFailed
	})
	_, trace := taskState(t, h.w, "picky")
	if !strings.Contains(trace, "divisible by 7") || !strings.Contains(trace, "d.public.orders/0 offset 0") {
		t.Fatalf("trace: %s", trace)
	}
	st, _ := h.w.Status("picky")
	if st.Connector.State != connect.StateFailed {
		t.Fatalf("connector state %s", st.Connector.State)
	}
	if s, _ := taskState(t, h.w, "gen"); s != connect.StateRunning {
		t.Fatalf("gen: %s", s)
	}
	// The failed record's offset is not committed.
	o, _ := h.w.Offsets("picky")
	for _, e := range o.Offsets {
		if e.Offset["kafka_offset"].(int64) > 0 {
			t.Fatalf("committed past the failed record: %+v", o)
		}
	}
}

// The admin API: bearer token, secrets redacted everywhere, pause, resume,
// stop, offsets reset, restart, 404 and 409.
func TestConnectorAdminAPI(t *testing.T) {
	dir := t.TempDir()
	h := start(t, dir, `
connectors:
  - name: gen
    plugin: datagen-source
    config: {rate: 2000, tables: [orders], topic_prefix: a}
    transforms:
      - type: mask_fields
        fields: [customer]
        salt: pepper-secret
  - name: picky
    plugin: test-sink
    topics: [a.public.orders]
    config: {password: hunter2}
`)
	srv := httptest.NewServer(admin.NewServer(admin.NewLocal(h.log), nil, admin.WithToken("tok"), admin.WithWorker(h.w, h.cat)))
	defer srv.Close()
	call := func(method, path, token string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	expect := func(method, path string, status int, contains ...string) string {
		t.Helper()
		code, body := call(method, path, "tok")
		if code != status {
			t.Fatalf("%s %s: %d %s, want %d", method, path, code, body, status)
		}
		for _, c := range contains {
			if !strings.Contains(body, c) {
				t.Fatalf("%s %s: %s lacks %q", method, path, body, c)
			}
		}
		for _, secret := range []string{"hunter2", "pepper-secret"} {
			if strings.Contains(body, secret) {
				t.Fatalf("%s %s shows a secret: %s", method, path, body)
			}
		}
		return body
	}
	if code, _ := call("GET", "/connectors", ""); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	if code, _ := call("GET", "/connectors", "wrong"); code != 401 {
		t.Fatalf("wrong token: %d", code)
	}
	if code, _ := call("GET", "/healthz", ""); code != 200 {
		t.Fatalf("healthz: %d", code)
	}
	expect("GET", "/connectors", 200, `["gen","picky"]`)
	expect("GET", "/connectors/picky", 200, `"password":"\u003credacted\u003e"`)
	expect("GET", "/connectors/gen", 200, `"salt":"\u003credacted\u003e"`)
	expect("GET", "/connectors?expand=info", 200, "redacted")
	expect("GET", "/connectors?expand=status", 200, `"RUNNING"`)
	expect("GET", "/connectors/picky/config", 200, "redacted")
	expect("GET", "/connectors/nope/status", 404, "unknown_connector")
	expect("PUT", "/connectors/nope/pause", 404)
	expect("GET", "/connector-plugins", 200, `"class":"datagen-source"`, `"class":"file-sink"`)
	expect("GET", "/connector-plugins/unwrap/config", 200, "delete_handling")
	expect("GET", "/connector-plugins/nope/config", 404)

	hw := func() int64 {
		tp, err := h.log.Topic("a.public.orders")
		if err != nil {
			return 0
		}
		p, _ := tp.Partition(0)
		return p.HighWatermark()
	}
	waitFor(t, "records", 10*time.Second, func() bool {
		if s, tr := taskState(t, h.w, "gen"); s != connect.StateRunning {
			t.Fatalf("gen: %s %s", s, tr)
		}
		return hw() > 0
	})
	expect("PUT", "/connectors/gen/pause", 202)
	waitFor(t, "PAUSED", 10*time.Second, func() bool {
		s, _ := taskState(t, h.w, "gen")
		return s == connect.StatePaused
	})
	expect("GET", "/connectors/gen/status", 200, `"state":"PAUSED"`)
	before := hw()
	time.Sleep(300 * time.Millisecond)
	if hw() != before {
		t.Fatal("a paused source kept appending")
	}
	expect("PUT", "/connectors/gen/resume", 202)
	waitFor(t, "records after resume", 10*time.Second, func() bool { return hw() > before })
	expect("GET", "/connectors/gen/status", 200, `"state":"RUNNING"`)

	expect("DELETE", "/connectors/gen/offsets", 409, "connector_state")
	expect("POST", "/connectors/gen/restart", 204)
	waitFor(t, "RUNNING after restart", 10*time.Second, func() bool {
		s, _ := taskState(t, h.w, "gen")
		return s == connect.StateRunning
	})
	expect("PUT", "/connectors/gen/stop", 204)
	expect("GET", "/connectors/gen/status", 200, `"state":"STOPPED"`, `"state":"UNASSIGNED"`)
	expect("POST", "/connectors/gen/restart", 409)
	expect("GET", "/connectors/gen/offsets", 200, `"position"`)
	expect("DELETE", "/connectors/gen/offsets", 200)
	expect("GET", "/connectors/gen/offsets", 200, `"offsets":[]`)
	expect("PUT", "/connectors/gen/resume", 202)
	waitFor(t, "RUNNING after resume", 10*time.Second, func() bool {
		s, _ := taskState(t, h.w, "gen")
		return s == connect.StateRunning
	})
	expect("GET", "/connectors/picky/offsets", 200, `"kafka_topic":"a.public.orders"`)
	expect("GET", "/metrics", 200, `eddy_connector_records_out_total{connector="gen"}`, `eddy_connector_batch_seconds_bucket{connector="gen"`, `eddy_group_lag{group="connect-picky"`)
}

// A scheduled connector runs at its ticks until drained; a job runs on
// its schedule; both are visible in status.
func TestSchedules(t *testing.T) {
	dir := t.TempDir()
	h := start(t, dir, `
connectors:
  - name: batch
    plugin: datagen-source
    config: {rate: 0, max_events: 100, tables: [orders], topic_prefix: s}
    schedule: "@every 1s"
jobs:
  - name: clean
    plugin: log-clean
    schedule: "@every 1s"
`)
	st, _ := h.w.Status("batch")
	if st.Schedule == nil || st.Schedule.Cron != "@every 1s" || st.Tasks[0].State != connect.StateUnassigned {
		t.Fatalf("before the first tick: %+v", st)
	}
	waitFor(t, "the scheduled run", 10*time.Second, func() bool {
		st, _ := h.w.Status("batch")
		o, _ := h.w.Offsets("batch")
		return st.Schedule.LastRun != nil && st.Tasks[0].State == connect.StateUnassigned && len(o.Offsets) == 1
	})
	waitFor(t, "the job", 10*time.Second, func() bool {
		js := h.w.Jobs()
		return len(js) == 1 && js[0].Runs > 0 && js[0].LastErr == ""
	})
	tp, _ := h.log.Topic("s.public.orders")
	p, _ := tp.Partition(0)
	if p.HighWatermark() != 100 { // 100 creates of 1000 keys
		t.Fatalf("high watermark %d", p.HighWatermark())
	}
}

// Closing the worker drains every task and returns promptly.
func TestCloseDrains(t *testing.T) {
	dir := t.TempDir()
	h := start(t, dir, fmt.Sprintf(genSink, 1_000_000, filepath.Join(dir, "out.jsonl")))
	waitFor(t, "records", 10*time.Second, func() bool { return fileLines(filepath.Join(dir, "out.jsonl")) > 1000 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := h.w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("close took %s", d)
	}
	// Every task has stopped, and what the sink wrote is whole lines,
	// none twice: the batch in hand finished before the task stopped.
	for _, n := range []string{"gen", "out"} {
		st, err := h.w.Status(n)
		if err != nil || st.Tasks[0].State != connect.StateUnassigned {
			t.Fatalf("%s after close: %+v, %v", n, st.Tasks, err)
		}
	}
	if _, _, err := datagencheck.Read(filepath.Join(dir, "out.jsonl")); err != nil {
		t.Fatal(err)
	}
	h.log.Close()
	h.w = nil
}

// replaySource hands out prepared records; positions are their indexes.
type replaySource struct {
	recs  []connect.Record
	batch int
	next  int
	out   []connect.Record
}

func (s *replaySource) Open(_ context.Context, pos []byte) error {
	s.next = 0
	if len(pos) >= 8 {
		s.next = int(binary.BigEndian.Uint64(pos)) + 1
	}
	return nil
}

func (s *replaySource) Poll(ctx context.Context) ([]connect.Record, error) {
	if s.next >= len(s.recs) {
		return nil, io.EOF
	}
	n := min(s.batch, len(s.recs)-s.next)
	// Copies, because the runtime appends headers and transforms edit.
	s.out = append(s.out[:0], s.recs[s.next:s.next+n]...)
	s.next += n
	return s.out, nil
}

func (s *replaySource) Commit(context.Context, []byte) error { return nil }
func (s *replaySource) Close() error                         { return nil }

// flakySource fails its first polls (over restarts), then works.
type flakySource struct {
	h        *harness
	failures int
	n        uint64
}

func (s *flakySource) Open(_ context.Context, pos []byte) error {
	if len(pos) == 8 {
		s.n = binary.BigEndian.Uint64(pos) + 1
	}
	return nil
}

func (s *flakySource) Poll(ctx context.Context) ([]connect.Record, error) {
	s.h.mu.Lock()
	s.h.polls++
	failing := s.h.polls <= s.failures
	s.h.mu.Unlock()
	if failing {
		return nil, errors.New("the database went away")
	}
	time.Sleep(5 * time.Millisecond)
	pos := binary.BigEndian.AppendUint64(nil, s.n)
	s.n++
	return []connect.Record{{Topic: "flaky", Key: "k", Value: fmt.Sprint(s.n), Position: pos}}, nil
}

func (s *flakySource) Commit(context.Context, []byte) error { return nil }
func (s *flakySource) Close() error                         { return nil }

// A task that fails restarts with exponential backoff and recovers; one
// that keeps failing past errors.retry_timeout stays FAILED with its error,
// and restarting it brings it back.
func TestTaskRetriesWithBackoff(t *testing.T) {
	h := start(t, t.TempDir(), `
connectors:
  - name: flaky
    plugin: flaky-source
    config: {failures: 4}
    errors: {retry_timeout: 1m, retry_max_delay: 200ms}
`)
	sawRestarting := false
	waitFor(t, "records after the failures", 20*time.Second, func() bool {
		if s, tr := taskState(t, h.w, "flaky"); s == connect.StateRestarting && strings.Contains(tr, "went away") {
			sawRestarting = true
		}
		tp, err := h.log.Topic("flaky")
		if err != nil {
			return false
		}
		p, _ := tp.Partition(0)
		return p.HighWatermark() >= 3
	})
	if s, _ := taskState(t, h.w, "flaky"); s != connect.StateRunning || !sawRestarting {
		t.Fatalf("state %s, saw RESTARTING: %v", s, sawRestarting)
	}
	h.stop(t)

	h = start(t, t.TempDir(), `
connectors:
  - name: flaky
    plugin: flaky-source
    config: {failures: 1000000}
    errors: {retry_timeout: 600ms, retry_max_delay: 100ms}
`)
	waitFor(t, "FAILED after the retry timeout", 20*time.Second, func() bool {
		s, _ := taskState(t, h.w, "flaky")
		return s == connect.StateFailed
	})
	if _, tr := taskState(t, h.w, "flaky"); !strings.Contains(tr, "gave up after retrying for 600ms") || !strings.Contains(tr, "went away") {
		t.Fatalf("trace: %s", tr)
	}
	h.mu.Lock()
	polls := h.polls
	h.polls = 1 << 30 // from now on the source works
	h.mu.Unlock()
	if polls < 3 || polls > 12 {
		t.Fatalf("%d polls in 600ms of backoff from 100ms capped at 100ms", polls)
	}
	if err := h.w.Restart(context.Background(), "flaky"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "RUNNING after restart", 10*time.Second, func() bool {
		s, _ := taskState(t, h.w, "flaky")
		return s == connect.StateRunning
	})
}

// A sink whose stored position retention has deleted stops with the gap
// and the ways on, rather than going on from the log start (records it
// never delivered would be missing from its target forever); a sink with
// nothing stored starts at the log start as before.
func TestSinkBehindRetentionStops(t *testing.T) {
	dir := t.TempDir()
	const n = 600
	smallSegments(t, dir)
	gen := fmt.Sprintf(`
connectors:
  - name: gen
    plugin: datagen-source
    config: {rate: 0, max_events: %d, keys: 37, tables: [orders], batch_size: 50, topic_prefix: t}
`, n)
	h := start(t, dir, gen)
	waitFor(t, "the source to finish", 30*time.Second, func() bool {
		o, _ := h.w.Offsets("gen")
		return len(o.Offsets) > 0 && lastEvent(o) == n-1
	})
	h.stop(t)

	// The sink "out" had delivered offset 0 only; then retention ran.
	l, err := elog.Open(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	tp := elog.TopicPartition{Topic: "t.public.orders", Partition: 0}
	if err := l.Groups().Commit(context.Background(), connect.GroupFor("out"), "", -1, map[elog.TopicPartition]int64{tp: 1}); err != nil {
		t.Fatal(err)
	}
	topic, _ := l.Topic(tp.Topic)
	part, _ := topic.Partition(0)
	if _, err := part.ApplyRetention(); err != nil {
		t.Fatal(err)
	}
	start0, hw := part.LogStartOffset(), part.HighWatermark()
	if start0 <= 1 {
		t.Fatalf("retention left the log start at %d (config %+v, high watermark %d)", start0, topic.Config(), part.HighWatermark())
	}
	l.Close()

	h = start(t, dir, gen+fmt.Sprintf(`
  - name: out
    plugin: file-sink
    topics: [t.public.orders]
    config: {path: %s}
    errors: {tolerance: all, dead_letter_topic: dlq}
  - name: fresh
    plugin: file-sink
    topics: [t.public.orders]
    config: {path: %s}
`, filepath.Join(dir, "out.jsonl"), filepath.Join(dir, "fresh.jsonl")))
	waitFor(t, "out to stop", 30*time.Second, func() bool {
		s, _ := taskState(t, h.w, "out")
		return s == connect.StateFailed
	})
	_, trace := taskState(t, h.w, "out")
	want := fmt.Sprintf("t.public.orders/0: the log no longer holds the sink's position: the sink is at offset 1 and retention has deleted the log up to %d, so records 1..%d were never delivered", start0, start0-1)
	if !strings.Contains(trace, want) || !strings.Contains(trace, "DELETE /connectors/out/offsets") {
		t.Fatalf("out's status: %s\nwant it to say: %s", trace, want)
	}
	if fileLines(filepath.Join(dir, "out.jsonl")) != 0 {
		t.Fatal("out wrote records past the gap")
	}
	waitFor(t, "fresh to deliver what the log holds", 30*time.Second, func() bool {
		return int64(fileLines(filepath.Join(dir, "fresh.jsonl"))) == hw-start0
	})
}

// Retention keeps what a sink connector has not consumed (retention_protects:
// sinks, the default): a sink paused while retention runs resumes with
// nothing lost. Past retention_protect_bytes retention deletes anyway, and
// the sink stops with the gap.
func TestRetentionProtectsSinks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		bound string
		lost  bool
	}{{"within the bound", "", false}, {"past the bound", "retention_protect_bytes: 4096\n", true}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			smallSegments(t, dir)
			const n = 600
			out := filepath.Join(dir, "out.jsonl")
			h := start(t, dir, tc.bound+fmt.Sprintf(`
connectors:
  - name: gen
    plugin: datagen-source
    config: {rate: 0, max_events: %d, keys: 37, tables: [orders], batch_size: 50, topic_prefix: t}
  - name: out
    plugin: file-sink
    topics: [t.public.orders]
    config: {path: %s}
`, n, out))
			if err := h.w.Pause("out"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the source to finish", 30*time.Second, func() bool {
				o, _ := h.w.Offsets("gen")
				return len(o.Offsets) > 0 && lastEvent(o) == n-1
			})
			topic, _ := h.log.Topic("t.public.orders")
			part, _ := topic.Partition(0)
			if _, err := part.ApplyRetention(); err != nil {
				t.Fatal(err)
			}
			hw := part.HighWatermark()
			if err := h.w.Resume("out"); err != nil {
				t.Fatal(err)
			}
			if tc.lost {
				if part.LogStartOffset() == 0 {
					t.Fatal("retention deleted nothing past the bound")
				}
				waitFor(t, "out to stop with the gap", 30*time.Second, func() bool {
					s, trace := taskState(t, h.w, "out")
					return s == connect.StateFailed && strings.Contains(trace, "the log no longer holds the sink's position")
				})
				return
			}
			waitFor(t, "out to deliver every record", 30*time.Second, func() bool { return int64(fileLines(out)) == hw })
			// Consumed: now retention may go.
			waitFor(t, "out to commit", 10*time.Second, func() bool {
				o, _ := h.w.Offsets("out")
				return len(o.Offsets) == 1 && o.Offsets[0].Offset["kafka_offset"].(int64) == hw
			})
			if _, err := part.ApplyRetention(); err != nil {
				t.Fatal(err)
			}
			if part.LogStartOffset() == 0 {
				t.Fatal("retention kept segments every sink has consumed")
			}
		})
	}
}

// smallSegments creates t.public.orders in the log of dir with 4 KiB
// segments and retention by size (8 KiB), so retention has work to do.
func smallSegments(t *testing.T, dir string) {
	t.Helper()
	l, err := elog.Open(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.CreateTopic("t.public.orders", elog.TopicConfig{Partitions: 1, SegmentBytes: 4096, RetentionBytes: 8192}); err != nil {
		t.Fatal(err)
	}
}

// A position marker (a record without a topic) appends nothing, but its
// position is stored: a source whose tables are idle while its upstream
// moves on resumes from where it had read.
func TestPositionMarkerStoresItsPosition(t *testing.T) {
	pos := func(i uint64) []byte { return binary.BigEndian.AppendUint64(nil, i) }
	recs := []connect.Record{
		{Topic: "m.public.t", Key: "k", Value: "v0", Position: pos(0)},
		{Position: pos(1), Timestamp: time.Now()},
		{Position: pos(2), Timestamp: time.Now()},
	}
	h := start(t, t.TempDir(), `
topics:
  - {name: m.public.t, partitions: 1}
connectors:
  - name: replay
    plugin: replay-source
    config: {batch_size: 1}
`, recs...)
	waitFor(t, "the markers' position stored", 10*time.Second, func() bool {
		o, _ := h.w.Offsets("replay")
		return len(o.Offsets) == 1 && string(o.Offsets[0].Offset["position"].([]byte)) == string(pos(2))
	})
	tp, err := h.log.Topic("m.public.t")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tp.Partition(0)
	if hw := p.HighWatermark(); hw != 1 {
		t.Fatalf("the topic holds %d records, want the one change: a marker was appended", hw)
	}
}

// A sink that stores records at points of its own (BufferingSink, as an
// object store's sink stores files): the group's offsets are committed
// only up to what it stored, never past what it holds; a store that
// fails is retried and takes each record once; after a restart it
// resumes from its stored end, the records it held unstored come again,
// and the store holds every offset once, in order.
func TestBufferingSinkCommitsWhatItStored(t *testing.T) {
	dir := t.TempDir()
	yaml := `
topics:
  - {name: a.public.orders, partitions: 2}
connectors:
  - name: gen
    plugin: datagen-source
    config: {rate: 3000, tables: [orders], topic_prefix: a}
  - name: files
    plugin: buffer-sink
    topics: [a.public.orders]
    config: {every: 37}
`
	h := start(t, dir, yaml)
	h.mu.Lock()
	h.storeFailures = 2
	h.mu.Unlock()
	stored := func() map[elog.TopicPartition][]int64 {
		h.mu.Lock()
		defer h.mu.Unlock()
		out := map[elog.TopicPartition][]int64{}
		for tp, o := range h.stored {
			out[tp] = slices.Clone(o)
		}
		return out
	}
	enough := func(n int) func() bool {
		return func() bool {
			s := stored()
			return len(s[elog.TopicPartition{Topic: "a.public.orders", Partition: 0}]) >= n && len(s[elog.TopicPartition{Topic: "a.public.orders", Partition: 1}]) >= n
		}
	}
	check := func(when string) {
		t.Helper()
		committed := h.log.Groups().Committed(connect.GroupFor("files"))
		for tp, offs := range stored() {
			for i, o := range offs {
				if o != int64(i) {
					t.Fatalf("%s: %v stored %d at place %d: every offset once, in order", when, tp, o, i)
				}
			}
			if c := committed[tp].Offset; c > int64(len(offs)) || len(offs)%37 != 0 {
				t.Fatalf("%s: %v committed at %d with %d stored (files of 37)", when, tp, c, len(offs))
			}
		}
	}
	if !waitUntilT(30*time.Second, enough(37*3)) {
		st, _ := h.w.Status("files")
		n := map[elog.TopicPartition]int{}
		for tp, o := range stored() {
			n[tp] = len(o)
		}
		tp, _ := h.log.Topic("a.public.orders")
		t.Fatalf("stored %v of %d partitions; status %+v", n, tp.Partitions(), st)
	}
	h.stop(t)
	check("after a stop")
	if h.storeFailures != 0 {
		t.Fatalf("%d store failures never came", h.storeFailures)
	}
	before := stored()
	h2 := start(t, dir, yaml)
	h2.mu.Lock()
	for tp, o := range before { // the store outlives the sink
		h2.stored[tp] = append(slices.Clone(o), h2.stored[tp]...)
	}
	h2.mu.Unlock()
	if !waitUntilT(30*time.Second, func() bool {
		h2.mu.Lock()
		defer h2.mu.Unlock()
		for tp, o := range before {
			if len(h2.stored[tp]) < len(o)+37*2 {
				return false
			}
		}
		return true
	}) {
		h2.mu.Lock()
		n := map[elog.TopicPartition][2]int{}
		for tp, o := range h2.stored {
			n[tp] = [2]int{len(before[tp]), len(o)}
		}
		h2.mu.Unlock()
		t.Fatalf("stored before and after the restart: %v; committed %v", n, h2.log.Groups().Committed(connect.GroupFor("files")))
	}
	h2.stop(t)
	h = h2
	check("after a restart")
	for tp, offs := range h.log.Groups().Committed(connect.GroupFor("files")) {
		if offs.Offset == 0 {
			t.Fatalf("%v never committed", tp)
		}
	}
}

func waitUntilT(d time.Duration, ok func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if ok() {
			return true
		}
	}
	return false
}
