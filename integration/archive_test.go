package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-cdc/eddy/internal/testdb"
)

// archiveStats reads a topic's partitions from a running eddy's admin API.
type partitionDesc struct {
	LogStart   int64 `json:"log_start_offset"`
	LocalStart int64 `json:"local_start_offset"`
	HW         int64 `json:"high_watermark"`
	Segments   int   `json:"segments"`
	Archive    *struct {
		Store    string `json:"store"`
		Start    int64  `json:"start"`
		End      int64  `json:"end"`
		Segments int    `json:"segments"`
	} `json:"archive"`
}

func describeTopic(t *testing.T, api, topic string) []partitionDesc {
	t.Helper()
	resp, err := http.Get(api + "/topics/" + topic)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var d struct {
		Partitions []partitionDesc `json:"partitions"`
	}
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatalf("describe %s: %v: %s", topic, err, body)
	}
	return d.Partitions
}

func adminAPI(t *testing.T, logPath string) string {
	t.Helper()
	for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(logPath)
		if m := adminRE.FindAllSubmatch(b, -1); len(m) > 0 {
			return string(m[len(m)-1][1])
		}
	}
	t.Fatal("no admin API address in the log")
	return ""
}

// Records produced to a topic archived to S3 (versitygw): the log-archive
// job uploads the closed segments and the local copies go; a consumer
// group reading from earliest gets every record once, in order, through
// the archive and then the local segments; the same after a restart, and
// `eddy topics describe` shows both ranges.
func TestArchiveToS3AndConsumeFromEarliest(t *testing.T) {
	bin := buildEddy(t)
	bucket := testdb.S3Bucket(t, "archive")
	dir := t.TempDir()
	body := archivedOrders(bucket, "cold")
	cfg := eddyConfig(t, dir, body)
	logPath := filepath.Join(dir, "eddy.log")
	p := startEddy(t, bin, cfg, logPath)
	defer func() { p.kill() }()
	<-p.up
	api := adminAPI(t, logPath)
	var in strings.Builder
	want := map[string][]string{} // key -> values in order
	for i := range 2000 {
		k := fmt.Sprintf("k%02d", i%37)
		v := fmt.Sprintf("order %05d %s ünïcødé", i, strings.Repeat("x", i%50))
		fmt.Fprintf(&in, "%s|%s\n", k, v)
		want[k] = append(want[k], v)
	}
	produce := exec.Command(bin, "produce", "orders", "--server", api, "--key-separator", "|", "--batch", "50")
	produce.Stdin = strings.NewReader(in.String())
	if out, err := produce.CombinedOutput(); err != nil {
		t.Fatalf("produce: %v\n%s", err, out)
	}
	waitArchived(t, api, logPath, "orders", 2)
	objs := testdb.S3Objects(t, testdb.S3Client(t, testdb.S3SecretKey), bucket)
	if len(objs) == 0 || !strings.HasPrefix(objs[0].Key, "cold/orders/") {
		t.Fatalf("objects in the bucket: %d", len(objs))
	}
	consume := func(group string) map[string][]string { return consumeGroup(t, bin, api, "orders", group) }
	check := func(got map[string][]string) { t.Helper(); sameByKey(t, got, want) }
	check(consume("readers"))
	// The group committed: a second run of it reads nothing more.
	if again := consume("readers"); len(again) != 0 {
		t.Fatalf("the group read %d keys again", len(again))
	}
	var desc bytes.Buffer
	d := exec.Command(bin, "topics", "describe", "orders", "--server", api)
	d.Stdout = &desc
	if err := d.Run(); err != nil || !strings.Contains(desc.String(), "ARCHIVED") || !strings.Contains(desc.String(), "lake") {
		t.Fatalf("topics describe: %v\n%s", err, desc.String())
	}
	t.Logf("topics describe:\n%s", desc.String())
	// After a restart, from the manifest beside the segments.
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
	p = startEddy(t, bin, cfg, logPath)
	<-p.up
	api = adminAPI(t, logPath)
	check(consume("others"))
	archived := int64(0)
	for _, pd := range describeTopic(t, api, "orders") {
		archived += pd.Archive.End
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()

	// A new machine: an empty data directory, the same store; the topic
	// rebuilt from the archive holds every archived record.
	dir2 := t.TempDir()
	cfg2 := eddyConfig(t, dir2, body)
	out, err := exec.Command(bin, "topics", "restore", "orders", "--store", "lake", "-c", cfg2).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "restored topic orders") {
		t.Fatalf("topics restore: %v\n%s", err, out)
	}
	logPath2 := filepath.Join(dir2, "eddy.log")
	p = startEddy(t, bin, cfg2, logPath2)
	<-p.up
	api = adminAPI(t, logPath2)
	got := consumeGroup(t, bin, api, "orders", "rebuild")
	n := int64(0)
	for k, vs := range got {
		if len(vs) > len(want[k]) || fmt.Sprint(vs) != fmt.Sprint(want[k][:len(vs)]) {
			t.Fatalf("key %s after the restore: %d records, not the first of the %d produced", k, len(vs), len(want[k]))
		}
		n += int64(len(vs))
	}
	if n != archived {
		t.Fatalf("the restored topic holds %d records, the archive %d", n, archived)
	}
}

// archivedOrders is the config body of the archive tests: a topic
// orders of 2 partitions in segments of 4 KiB, archived to bucket (below
// prefix) as soon as a segment closes, its local copies dropped at once,
// by a log-archive job every second.
func archivedOrders(bucket, prefix string) string {
	return fmt.Sprintf(`stores:
  - {name: lake, type: s3, bucket: %s, prefix: %q, endpoint: %s, path_style: true, access_key_id: %s, secret_access_key: %s}
topics:
  - name: orders
    partitions: 2
    segment_bytes: 4096
    archive: {store: lake, after: 0s, local_retention: 0s}
jobs:
  - {name: archive, plugin: log-archive, schedule: "@every 1s"}
`, bucket, prefix, testdb.S3Endpoint, testdb.S3AccessKey, testdb.S3SecretKey)
}

// waitArchived waits until each of the topic's partitions keeps only its
// active segment locally, the rest archived from offset 0.
func waitArchived(t *testing.T, api, logPath, topic string, partitions int) {
	t.Helper()
	var parts []partitionDesc
	for start := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		parts = describeTopic(t, api, topic)
		done := len(parts) == partitions
		for _, pd := range parts {
			done = done && pd.Archive != nil && pd.Archive.Segments > 0 && pd.LocalStart > 0 && pd.LocalStart == pd.Archive.End && pd.LogStart == 0 && pd.Segments == 1
		}
		if done {
			return
		}
		if time.Since(start) > 60*time.Second {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("not archived in 60 s: %+v\n%.4000s", parts, log)
		}
	}
}

// consumeGroup reads topic from earliest as a member of group, by key,
// failing on an offset printed twice.
func consumeGroup(t *testing.T, bin, api, topic, group string) map[string][]string {
	t.Helper()
	out, err := exec.Command(bin, "consume", topic, "--server", api, "--group", group, "--from", "earliest", "--decode", "none").Output()
	if err != nil {
		t.Fatalf("consume: %v", err)
	}
	got := map[string][]string{}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		var r struct {
			Partition int    `json:"partition"`
			Offset    int64  `json:"offset"`
			Key       string `json:"key"`
			Value     string `json:"value"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("consume printed %q: %v", line, err)
		}
		id := fmt.Sprintf("%d/%d", r.Partition, r.Offset)
		if seen[id] {
			t.Fatalf("offset %s printed twice", id)
		}
		seen[id] = true
		got[r.Key] = append(got[r.Key], r.Value)
	}
	return got
}

// sameByKey fails unless got holds exactly want's values, in order, per key.
func sameByKey(t *testing.T, got, want map[string][]string) {
	t.Helper()
	for k, vs := range want {
		if fmt.Sprint(got[k]) != fmt.Sprint(vs) {
			t.Fatalf("key %s: %d records, want %d in order", k, len(got[k]), len(vs))
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d keys, want %d", len(got), len(want))
	}
}

// kill -9 at 20 random points while the log-archive job uploads segments
// and deletes their local copies (every second, segments of 4 KiB,
// archived and dropped at once): every acknowledged record is read once,
// in order, from earliest, none lost, none twice.
func TestArchiveKill9DuringUploadsAndDeletion(t *testing.T) {
	bin := buildEddy(t)
	bucket := testdb.S3Bucket(t, "archive-kill")
	dir := t.TempDir()
	cfg := eddyConfig(t, dir, archivedOrders(bucket, ""))
	logPath := filepath.Join(dir, "eddy.log")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 18))
	want := map[string][]string{}
	n := 0
	for round := range 20 {
		p := startRound(t, bin, cfg, logPath, round)
		api := adminAPI(t, logPath)
		var in strings.Builder
		for range 300 {
			k := fmt.Sprintf("k%02d", n%23)
			v := fmt.Sprintf("r%02d-%05d-%s", round, n, strings.Repeat("y", n%40))
			fmt.Fprintf(&in, "%s|%s\n", k, v)
			want[k] = append(want[k], v)
			n++
		}
		produce := exec.Command(bin, "produce", "orders", "--server", api, "--key-separator", "|", "--batch", "40")
		produce.Stdin = strings.NewReader(in.String())
		if out, err := produce.CombinedOutput(); err != nil {
			p.kill()
			t.Fatalf("round %d: produce: %v\n%s", round, err, out)
		}
		time.Sleep(time.Duration(rng.IntN(1600)) * time.Millisecond) // into the job's uploads and deletions
		p.kill()
	}
	// The kills came while the job worked: it archived in the rounds.
	b, _ := os.ReadFile(logPath)
	if k := strings.Count(string(b), "segment archived"); k < 20 {
		t.Fatalf("only %d segments archived during the 20 rounds", k)
	}
	p := startEddy(t, bin, cfg, logPath)
	defer p.kill()
	<-p.up
	api := adminAPI(t, logPath)
	waitArchived(t, api, logPath, "orders", 2)
	sameByKey(t, consumeGroup(t, bin, api, "orders", "after-kills"), want)
}

// A compacted topic archived to S3: the archive run compacts the local
// segments before it uploads them and, once enough is new, the archive
// itself, tombstones going after delete_retention. A new machine (an
// empty data directory, a running eddy) restores it through the admin
// API: it holds the latest value of every key, once, and nothing of the
// deleted ones.
func TestArchivedCompactedTopicRestoredThroughTheAdminAPI(t *testing.T) {
	bin := buildEddy(t)
	bucket := testdb.S3Bucket(t, "archive-compact")
	store := fmt.Sprintf(`stores:
  - {name: lake, type: s3, bucket: %s, endpoint: %s, path_style: true, access_key_id: %s, secret_access_key: %s}
jobs:
  - {name: archive, plugin: log-archive, schedule: "@every 1s"}
`, bucket, testdb.S3Endpoint, testdb.S3AccessKey, testdb.S3SecretKey)
	dir := t.TempDir()
	cfg := eddyConfig(t, dir, store+`topics:
  - name: customers
    partitions: 2
    cleanup: compact
    segment_bytes: 4096
    segment_age: 1s
    delete_retention: 1s
    archive: {store: lake, after: 0s, local_retention: 0s}
`)
	logPath := filepath.Join(dir, "eddy.log")
	p := startEddy(t, bin, cfg, logPath)
	defer func() { p.kill() }()
	<-p.up
	api := adminAPI(t, logPath)
	produce := func(api string, recs []map[string]any) {
		t.Helper()
		b, _ := json.Marshal(map[string]any{"records": recs})
		resp, err := http.Post(api+"/topics/customers/records", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("produce: %s %s", resp.Status, body)
		}
	}
	// Rows of several shapes, changed over rounds; some deleted for good,
	// some deleted and written again.
	want := map[string]string{}
	produced := 0
	for round := range 8 {
		var recs []map[string]any
		for i := range 60 {
			k := fmt.Sprintf("customer-%03d", (i*7+round)%90)
			var v any = fmt.Sprintf(`{"round":%d,"name":"Zoë %s","note":%q}`, round, k, strings.Repeat("ß", (i*round)%300))
			if (i+round)%11 == 0 {
				v = nil
				delete(want, k)
			} else {
				want[k] = v.(string)
			}
			recs = append(recs, map[string]any{"key": k, "value": v})
		}
		produce(api, recs)
		produced += len(recs)
		time.Sleep(300 * time.Millisecond)
	}
	// Past segment_age, a record to each partition rolls the segments
	// that hold the rows, so that all of them are archived.
	time.Sleep(1200 * time.Millisecond)
	var fill []map[string]any
	for i := range 20 {
		fill = append(fill, map[string]any{"key": fmt.Sprintf("~fill-%d", i), "value": "x"})
	}
	produce(api, fill)

	// read consumes the topic from earliest: the latest value of each key
	// (fillers aside), the records of keys appearing twice below the
	// archive's end, tombstones, records.
	type view struct {
		latest            map[string]string
		dups, tombs, recs int
	}
	read := func(api string) view {
		t.Helper()
		ends := map[int]int64{}
		for i, pd := range describeTopic(t, api, "customers") {
			if pd.Archive != nil {
				ends[i] = pd.Archive.End
			}
		}
		out, err := exec.Command(bin, "consume", "customers", "--server", api, "--from", "earliest", "--decode", "none").Output()
		if err != nil {
			t.Fatalf("consume: %v", err)
		}
		v := view{latest: map[string]string{}}
		seen := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			var r struct {
				Partition int     `json:"partition"`
				Offset    int64   `json:"offset"`
				Key       string  `json:"key"`
				Value     *string `json:"value"`
			}
			if line == "" {
				continue
			}
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("consume printed %q: %v", line, err)
			}
			if strings.HasPrefix(r.Key, "~fill") {
				continue
			}
			v.recs++
			if seen[r.Key] && r.Offset < ends[r.Partition] {
				v.dups++
			}
			seen[r.Key] = true
			if r.Value == nil {
				v.tombs++
				delete(v.latest, r.Key)
			} else {
				v.latest[r.Key] = *r.Value
			}
		}
		return v
	}
	var v view
	for start := time.Now(); ; time.Sleep(500 * time.Millisecond) {
		v = read(api)
		if v.dups == 0 && v.tombs == 0 && fmt.Sprint(v.latest) == fmt.Sprint(want) {
			parts := describeTopic(t, api, "customers")
			if parts[0].LocalStart > 0 && parts[1].LocalStart > 0 {
				break
			}
		}
		if time.Since(start) > 60*time.Second {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("not compacted in the archive in 60 s: %d keys (want %d), %d twice, %d tombstones, %d records\n%.6000s",
				len(v.latest), len(want), v.dups, v.tombs, v.recs, log)
		}
	}
	t.Logf("%d records produced for %d keys (%d live); %d read from earliest once the archive was compacted", produced, 90, len(want), v.recs)
	if v.recs != len(want) {
		t.Fatalf("%d records of %d live keys", v.recs, len(want))
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()

	// A new machine: the same store, the topic not declared; the running
	// eddy restores it.
	dir2 := t.TempDir()
	cfg2 := eddyConfig(t, dir2, store+`log:
  archive: {store: lake, after: 0s, local_retention: 0s}
`)
	logPath2 := filepath.Join(dir2, "eddy.log")
	p = startEddy(t, bin, cfg2, logPath2)
	<-p.up
	api2 := adminAPI(t, logPath2)
	if out, err := exec.Command(bin, "topics", "restore", "customers", "--store", "nope", "--server", api2).CombinedOutput(); err == nil || !strings.Contains(string(out), "lake") {
		t.Fatalf("a restore from an unknown store: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "topics", "restore", "customers", "--store", "lake", "--server", api2).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "restored topic customers") {
		t.Fatalf("topics restore: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	if out, err := exec.Command(bin, "topics", "restore", "customers", "--store", "lake", "--server", api2).CombinedOutput(); err == nil || !strings.Contains(string(out), "exists") {
		t.Fatalf("a second restore: %v\n%s", err, out)
	}
	got := read(api2)
	if fmt.Sprint(got.latest) != fmt.Sprint(want) || got.recs != len(want) || got.tombs != 0 {
		t.Fatalf("restored: %d keys (want %d), %d records, %d tombstones", len(got.latest), len(want), got.recs, got.tombs)
	}
}
