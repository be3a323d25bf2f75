package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/eddy-cdc/eddy/internal/testdb"
	elog "github.com/eddy-cdc/eddy/log"
)

var adminRE = regexp.MustCompile(`admin_api=(http://\S+)`)

// topicRecords asks a running eddy (whose log is logPath) how many
// records topic holds, -1 when it cannot say yet.
func topicRecords(logPath, topic string) int64 {
	b, _ := os.ReadFile(logPath)
	m := adminRE.FindAllSubmatch(b, -1)
	if len(m) == 0 {
		return -1
	}
	resp, err := http.Get(string(m[len(m)-1][1]) + "/topics/" + topic)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var desc struct {
		Partitions []struct {
			HighWatermark int64 `json:"high_watermark"`
		} `json:"partitions"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &desc) != nil {
		return -1
	}
	var n int64
	for _, p := range desc.Partitions {
		n += p.HighWatermark
	}
	return n
}

// One transaction of 1,000,000 rows goes into the log in batches, not
// held in memory: eddy run's peak RSS stays under 256 MiB, and every row
// is in the log once.
func TestMariaDBMillionRowTransaction(t *testing.T) {
	if testing.Short() {
		t.Skip("large transaction")
	}
	testdb.MariaBinlogShared(t)
	db := testdb.MariaDB(t, "eddy_it_big")
	testdb.MariaExec(t, db, "create table big (id int primary key, v bigint not null, note text)")
	bin := buildEddy(t)
	dir := t.TempDir()
	cfg := eddyConfig(t, dir, fmt.Sprintf(`connectors:
  - name: maria
    plugin: mysql-source
    config: {dsn: "mysql://root@%s", tables: [%s.big], topic_prefix: shop}
`, testdb.MariaAddr, db))
	logPath := filepath.Join(dir, "eddy.log")
	p := startEddy(t, bin, cfg, logPath)
	defer p.kill()
	<-p.up
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	testdb.MariaExec(t, db, "insert into big select seq, 0, md5(seq) from seq_1_to_1000000")
	committed := time.Since(start)
	topic := "shop." + db + ".big"
	for topicRecords(logPath, topic) != 1_000_000 {
		if time.Since(start) > 4*time.Minute {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("%d records after 4 minutes, want 1000000\n%.4000s", topicRecords(logPath, topic), b[max(0, len(b)-4000):])
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(start) - committed
	rss := peakRSS(p.cmd.Process.Pid)
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
	t.Logf("1,000,000-row transaction: in the log %s after the commit (the insert took %s), peak RSS %d MiB",
		took.Round(time.Millisecond), committed.Round(time.Millisecond), rss>>20)
	if rss <= 0 || rss > 256<<20 {
		t.Fatalf("peak RSS %d MiB, want under 256", rss>>20)
	}
}

// mustExec runs q on c, failing the test on an error.
func mustExec(b testing.TB, c *client.Conn, q string) {
	b.Helper()
	if _, err := c.Execute(q); err != nil {
		b.Fatalf("%.200s: %v", q, err)
	}
}

// mariaPosition is the server's binlog file and position now.
func mariaPosition(b testing.TB, c *client.Conn) (string, int64) {
	r, err := c.Execute("show master status")
	if err != nil {
		b.Fatal(err)
	}
	file, _ := r.GetString(0, 0)
	pos, _ := r.GetInt(0, 1)
	return file, pos
}

// Backlog catch-up: 1,000,000 rows of 5 columns written in 1,000-row
// transactions while the connector was stopped, then read by
// mysql-source into the log (Avro through the registry, durable appends),
// beside mariadb-binlog --read-from-remote-server --verbose decoding the
// same binlog to /dev/null.
func BenchmarkMariaDBBacklog(b *testing.B) {
	testdb.MariaBinlogShared(b)
	root := testdb.MariaRoot(b)
	db := testdb.MariaDB(b, "eddy_bench")
	testdb.MariaExec(b, db, "create table orders (id int primary key, qty bigint not null, sku varchar(40) not null, price double not null, at datetime(6) not null)")
	dir := b.TempDir()
	yaml := fmt.Sprintf(`
topics:
  - {name: shop.%s.orders, partitions: 1}
connectors:
  - name: maria
    plugin: mysql-source
    config: {dsn: "mysql://root@%s", tables: [%s.orders], topic_prefix: shop}
`, db, testdb.MariaAddr, db)
	// The empty table's snapshot stores a position; the backlog comes after.
	p := startPipeline(b, dir, yaml)
	waitUntil(b, 30*time.Second, func() bool { o, _ := p.w.Offsets("maria"); return len(o.Offsets) > 0 })
	p.stop(b)
	if _, err := root.Execute("flush binary logs"); err != nil {
		b.Fatal(err)
	}
	first, _ := mariaPosition(b, root)
	const n, txn = 1_000_000, 1_000
	if err := root.UseDB(db); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; i += txn {
		mustExec(b, root, fmt.Sprintf("insert into orders select seq, seq %% 97, concat('sku-', seq), seq * 0.25, '2026-12-02 10:00:00.123456' from seq_%d_to_%d", i+1, i+txn))
	}
	last, _ := mariaPosition(b, root)
	files := []string{}
	logs, _ := root.Execute("show binary logs")
	for i := range logs.RowNumber() {
		f, _ := logs.GetString(i, 0)
		if f >= first && f <= last {
			files = append(files, f)
		}
	}
	b.ResetTimer()
	t0 := time.Now()
	args := append([]string{"--read-from-remote-server", "--host=127.0.0.1", "--user=root", "--verbose"}, files...)
	cmd := exec.Command("mariadb-binlog", args...)
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("mariadb-binlog: %v\n%s", err, stderr.String())
	}
	tool := time.Since(t0)
	t0 = time.Now()
	p = startPipeline(b, dir, yaml)
	tp, err := p.log.EnsureTopic("shop."+db+".orders", elog.TopicConfig{Partitions: 1})
	if err != nil {
		b.Fatal(err)
	}
	part, _ := tp.Partition(0)
	waitUntil(b, 10*time.Minute, func() bool { return part.HighWatermark() >= n })
	eddy := time.Since(t0)
	b.StopTimer()
	b.ReportMetric(float64(n)/tool.Seconds(), "mariadb-binlog-rows/s")
	b.ReportMetric(float64(n)/eddy.Seconds(), "eddy-rows/s")
	b.ReportMetric(tool.Seconds()/eddy.Seconds(), "x-of-mariadb-binlog")
}

// waitUntil polls cond every 20 ms for up to d.
func waitUntil(b testing.TB, d time.Duration, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("not done after %s", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Live: 2,000 single-row transactions a second for 10 s, from two
// writers; the latency from each commit's return to its record being
// readable in the log, which is only after its fsync.
func BenchmarkMariaDBLiveLatency(b *testing.B) {
	testdb.MariaBinlogShared(b)
	db := testdb.MariaDB(b, "eddy_bench")
	testdb.MariaExec(b, db, "create table orders (id int primary key, v bigint not null, note text)")
	p := startPipeline(b, b.TempDir(), fmt.Sprintf(`
topics:
  - {name: shop.%s.orders, partitions: 1}
connectors:
  - name: maria
    plugin: mysql-source
    config: {dsn: "mysql://root@%s", tables: [%s.orders], topic_prefix: shop, format: json}
`, db, testdb.MariaAddr, db))
	waitUntil(b, 30*time.Second, func() bool { o, _ := p.w.Offsets("maria"); return len(o.Offsets) > 0 })
	tp, err := p.log.EnsureTopic("shop."+db+".orders", elog.TopicConfig{Partitions: 1})
	if err != nil {
		b.Fatal(err)
	}
	part, _ := tp.Partition(0)
	const rate, secs, writers = 2000, 10, 2
	committed := make([]time.Time, rate*secs) // by id, set by its writer
	durable := make([]time.Time, rate*secs)   // by id, set by the reader
	read := make(chan int)
	go func() { // the reader: when each record became readable
		got := 0
		off := int64(0)
		deadline := time.Now().Add(secs*time.Second + 30*time.Second)
		for got < rate*secs && time.Now().Before(deadline) {
			wctx, cancel := context.WithTimeout(context.Background(), time.Second)
			part.Wait(wctx, off)
			cancel()
			now := time.Now()
			res, err := part.Fetch(off, 1<<20)
			if err != nil || len(res.Data) == 0 {
				continue
			}
			recs, _ := elog.DecodeBatches(nil, res.Data, off)
			for _, r := range recs {
				var k struct {
					ID int `json:"id"`
				}
				if r.Value != nil && json.Unmarshal(r.Key, &k) == nil && k.ID >= 0 && k.ID < len(durable) {
					durable[k.ID] = now
					got++
				}
			}
			off = res.NextOffset
		}
		read <- got
	}()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := client.Connect(testdb.MariaAddr, "root", "", db)
			if err != nil {
				b.Error(err)
				return
			}
			defer c.Close()
			for i := w; i < rate*secs; i += writers {
				if d := time.Until(start.Add(time.Duration(i) * time.Second / rate)); d > 0 {
					time.Sleep(d)
				}
				if _, err := c.Execute("insert into orders values (" + strconv.Itoa(i) + ", 0, 'x')"); err != nil {
					b.Error(err)
					return
				}
				committed[i] = time.Now()
			}
		}()
	}
	wg.Wait()
	achieved := float64(rate*secs) / time.Since(start).Seconds()
	if <-read == 0 {
		b.Fatal("no records read")
	}
	var ls []time.Duration
	for i := range durable {
		if !durable[i].IsZero() && !committed[i].IsZero() {
			ls = append(ls, max(durable[i].Sub(committed[i]), 0))
		}
	}
	slices.Sort(ls)
	q := func(f float64) float64 { return float64(ls[int(f*float64(len(ls)-1))].Microseconds()) / 1000 }
	b.ReportMetric(achieved, "txns/s")
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(len(ls)), "records")
}
