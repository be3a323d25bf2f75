package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	elog "github.com/eddy-cdc/eddy/log"
)

type benchOpts struct {
	records, size, producers, partitions, batch int
	recoveryBytes                               int64
	dropCaches                                  bool
	json                                        bool
}

// benchResult is one measured figure.
type benchResult struct {
	Name     string  `json:"name"`
	Value    float64 `json:"value"`
	Unit     string  `json:"unit"`
	Detail   string  `json:"detail,omitempty"`
	Target   string  `json:"target,omitempty"`
	MeetsTgt *bool   `json:"meets_target,omitempty"`
}

func (a *app) benchCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Measure Eddy on this machine"}
	var o benchOpts
	logCmd := &cobra.Command{
		Use:   "log",
		Short: "Measure the log: batch appends vs write+fsync, group commit, reads, recovery after kill -9",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			dir := a.dataDir
			if dir == "" {
				tmp, err := os.MkdirTemp("", "eddy-bench-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(tmp)
				dir = tmp
			}
			res, err := benchLog(c.Context(), dir, o)
			if err != nil {
				return err
			}
			if o.json {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "BENCHMARK\tRESULT\tTARGET\tDETAIL")
			for _, r := range res {
				mark := ""
				if r.MeetsTgt != nil && !*r.MeetsTgt {
					mark = " (below target)"
				}
				fmt.Fprintf(w, "%s\t%.4g %s\t%s%s\t%s\n", r.Name, r.Value, r.Unit, r.Target, mark, r.Detail)
			}
			return w.Flush()
		},
	}
	f := logCmd.Flags()
	f.IntVar(&o.records, "records", 200000, "records per scenario")
	f.IntVar(&o.size, "size", 1024, "record value size in bytes")
	f.IntVar(&o.producers, "producers", 64, "concurrent single-record producers")
	f.IntVar(&o.partitions, "partitions", 1, "partitions (one batch producer each)")
	f.IntVar(&o.batch, "batch", 1000, "records per batch")
	f.Int64Var(&o.recoveryBytes, "recovery-bytes", 1<<30, "size of the partition opened after kill -9 (0 skips)")
	f.BoolVar(&o.dropCaches, "drop-caches", false, "also time the open with a cold page cache (needs root: writes /proc/sys/vm/drop_caches)")
	f.BoolVar(&o.json, "json", false, "print JSON")

	var wdir string
	var wbytes int64
	writer := &cobra.Command{
		Use:    "log-writer",
		Hidden: true, // the child process that `bench log` kills -9
		RunE: func(c *cobra.Command, _ []string) error {
			return recoveryWriter(c.Context(), wdir, wbytes)
		},
	}
	writer.Flags().StringVar(&wdir, "dir", "", "")
	writer.Flags().Int64Var(&wbytes, "bytes", 0, "")
	cmd.AddCommand(logCmd, writer)
	return cmd
}

func ptr(b bool) *bool { return &b }

func benchLog(ctx context.Context, dir string, o benchOpts) ([]benchResult, error) {
	if o.records < o.batch || o.size < 1 || o.producers < 1 || o.partitions < 1 || o.batch < 1 {
		return nil, usageError{fmt.Errorf("need --records >= --batch and positive sizes")}
	}
	var out []benchResult
	value := make([]byte, o.size)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	batches := o.records / o.batch
	totalBytes := float64(batches * o.batch * o.size)

	l, err := elog.Open(filepath.Join(dir, "log"), elog.WithCleanerInterval(0))
	if err != nil {
		return nil, err
	}
	defer l.Close()
	t, err := l.CreateTopic("bench-batches", elog.TopicConfig{Partitions: o.partitions, MaxBatchBytes: 64 << 20})
	if err != nil {
		return nil, err
	}
	recs := make([]elog.Record, o.batch)
	for i := range recs {
		recs[i].Value = value
	}

	// 1+2. Batch appends with fsync always against plain write + fdatasync of
	// the same bytes, in alternating rounds so that both see the same disk:
	// this machine's write latency drifts by several times over seconds.
	plain, err := os.Create(filepath.Join(dir, "baseline"))
	if err != nil {
		return nil, err
	}
	defer plain.Close()
	plainBuf := make([]byte, o.batch*o.size)
	const rounds = 10
	var baseDur, appendDur time.Duration
	var wg sync.WaitGroup
	for r := 0; r < rounds; r++ {
		lo, hi := batches*r/rounds, batches*(r+1)/rounds
		start := time.Now()
		for i := lo; i < hi; i++ {
			if _, err := plain.Write(plainBuf); err != nil {
				return nil, err
			}
			if err := syscall.Fdatasync(int(plain.Fd())); err != nil {
				return nil, err
			}
		}
		baseDur += time.Since(start)
		start = time.Now()
		errs := make([]error, o.partitions)
		for p := 0; p < o.partitions; p++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				part, _ := t.Partition(p)
				for i := lo + p; i < hi; i += o.partitions {
					if _, _, err := part.Append(ctx, recs); err != nil {
						errs[p] = err
						return
					}
				}
			}()
		}
		wg.Wait()
		appendDur += time.Since(start)
		for _, err := range errs {
			if err != nil {
				return nil, err
			}
		}
	}
	os.Remove(plain.Name())
	baseMBs := totalBytes / baseDur.Seconds() / 1e6
	mbs := totalBytes / appendDur.Seconds() / 1e6
	out = append(out,
		benchResult{Name: "write+fdatasync baseline", Value: baseMBs, Unit: "MB/s",
			Detail: fmt.Sprintf("%d writes of %d KiB, interleaved with the appends", batches, o.batch*o.size/1024)},
		benchResult{Name: "append batches, fsync always", Value: mbs, Unit: "MB/s", Target: ">= 200 MB/s", MeetsTgt: ptr(mbs >= 200),
			Detail: fmt.Sprintf("%d batches x %d x %d B, %d partition(s), %.0f records/s", batches, o.batch, o.size, o.partitions, float64(batches*o.batch)/appendDur.Seconds())},
		benchResult{Name: "append / baseline", Value: mbs / baseMBs, Unit: "x", Target: ">= 0.7x", MeetsTgt: ptr(mbs/baseMBs >= 0.7)})

	// 3. Group commit: P producers, one record each, waiting for the ack.
	gt, err := l.CreateTopic("bench-group-commit", elog.TopicConfig{})
	if err != nil {
		return nil, err
	}
	gp, _ := gt.Partition(0)
	n := min(o.records, 200000)
	lat := make([][]time.Duration, o.producers)
	start := time.Now()
	for w := 0; w < o.producers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			one := []elog.Record{{Value: value}}
			for i := w; i < n; i += o.producers {
				t0 := time.Now()
				if _, _, err := gp.Append(ctx, one); err != nil {
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) != n {
		return nil, fmt.Errorf("group commit: %d of %d appends failed", n-len(all), n)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	rps := float64(n) / d.Seconds()
	out = append(out, benchResult{Name: fmt.Sprintf("%d producers, 1 record each, fsync always", o.producers), Value: rps, Unit: "records/s",
		Target: ">= 50000 records/s", MeetsTgt: ptr(rps >= 50000),
		Detail: fmt.Sprintf("ack latency p50 %s p99 %s", all[len(all)/2].Round(time.Microsecond), all[len(all)*99/100].Round(time.Microsecond))})

	// 4. Reads from the page cache: fetch + CRC + decode.
	rp, _ := t.Partition(0)
	start = time.Now()
	var count int
	var buf []elog.Record
	var data []byte
	for off := rp.LogStartOffset(); off < rp.HighWatermark(); {
		res, err := rp.FetchInto(data, off, 4<<20)
		if err != nil {
			return nil, err
		}
		data = res.Data
		if buf, err = elog.DecodeBatches(buf[:0], res.Data, off); err != nil {
			return nil, err
		}
		count += len(buf)
		off = res.NextOffset
	}
	d = time.Since(start)
	rrps := float64(count) / d.Seconds()
	out = append(out, benchResult{Name: "read from page cache", Value: rrps, Unit: "records/s", Target: ">= 1000000 records/s", MeetsTgt: ptr(rrps >= 1e6),
		Detail: fmt.Sprintf("%d records, %.0f MB/s", count, float64(count*o.size)/d.Seconds()/1e6)})

	// 5. Open after kill -9.
	if o.recoveryBytes > 0 {
		secs, segs, err := benchRecovery(ctx, filepath.Join(dir, "recovery"), o.recoveryBytes, false)
		if err != nil {
			return nil, err
		}
		out = append(out, benchResult{Name: "open partition after kill -9", Value: secs, Unit: "s", Target: "< 2 s", MeetsTgt: ptr(secs < 2),
			Detail: fmt.Sprintf("%.2f GiB partition, %d segment(s), page cache warm", float64(o.recoveryBytes)/(1<<30), segs)})
		if o.dropCaches {
			secs, segs, err := benchRecovery(ctx, filepath.Join(dir, "recovery-cold"), o.recoveryBytes, true)
			if err != nil {
				return nil, err
			}
			out = append(out, benchResult{Name: "open after kill -9, cold cache", Value: secs, Unit: "s",
				Detail: fmt.Sprintf("%.2f GiB partition, %d segment(s), caches dropped before the open", float64(o.recoveryBytes)/(1<<30), segs)})
		}
	}
	return out, nil
}

// benchRecovery runs `eddy bench log-writer` until it has written bytes into
// one partition, kills it with SIGKILL mid-append, and times Open.
func benchRecovery(ctx context.Context, dir string, bytes int64, cold bool) (float64, int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, 0, err
	}
	cmd := exec.CommandContext(ctx, exe, "bench", "log-writer", "--dir", dir, "--bytes", fmt.Sprint(bytes))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		return 0, 0, fmt.Errorf("recovery writer did not get ready: %q %v", line, err)
	}
	time.Sleep(20 * time.Millisecond) // let it be mid-append
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if cold {
		syscall.Sync()
		if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
			return 0, 0, fmt.Errorf("drop caches (needs root): %w", err)
		}
	}
	start := time.Now()
	l, err := elog.Open(dir, elog.WithCleanerInterval(0))
	if err != nil {
		return 0, 0, err
	}
	secs := time.Since(start).Seconds()
	defer l.Close()
	t, err := l.Topic("recovery")
	if err != nil {
		return 0, 0, err
	}
	p, _ := t.Partition(0)
	return secs, p.Stats().Segments, nil
}

func recoveryWriter(ctx context.Context, dir string, bytes int64) error {
	l, err := elog.Open(dir, elog.WithCleanerInterval(0))
	if err != nil {
		return err
	}
	// One segment larger than the partition, so the whole of it is the
	// active segment that recovery must scan: the worst case.
	t, err := l.EnsureTopic("recovery", elog.TopicConfig{Fsync: elog.FsyncNever, MaxBatchBytes: 64 << 20,
		SegmentBytes: min(bytes+bytes/4+(64<<20), 2<<30-1)})
	if err != nil {
		return err
	}
	p, _ := t.Partition(0)
	recs := make([]elog.Record, 1000)
	for i := range recs {
		recs[i].Value = make([]byte, 1024)
	}
	ready := false
	for {
		if _, _, err := p.Append(ctx, recs); err != nil {
			return err
		}
		if !ready && p.Stats().Bytes >= bytes {
			fmt.Println("ready")
			ready = true
		}
	}
}
