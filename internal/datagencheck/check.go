// Package datagencheck verifies a file sink's output against what a
// datagen source generates: every event and tombstone exactly once, in
// per-key order, and no line twice. The runtime's tests and crash tests
// share it.
package datagencheck

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/sources/datagen"
)

// Expected lists, per topic and key, the events datagen generates for
// event numbers 0..n-1: "seq" for an event, "seq+" for its tombstone.
func Expected(p connect.Params, n uint64) (map[string][]string, error) {
	src, err := datagen.New(p, connect.Env{Connector: "check"})
	if err != nil {
		return nil, err
	}
	g := src.(*datagen.Generator)
	out := map[string][]string{}
	for i := range n {
		for _, r := range g.Event(i, time.Time{}) {
			k := fmt.Sprintf("%s|%v", r.Topic, r.Key.(map[string]any)["id"])
			m := fmt.Sprint(i)
			if r.Value == nil {
				m += "+"
			}
			out[k] = append(out[k], m)
		}
	}
	return out, nil
}

type line struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
	Key       struct {
		ID int64 `json:"id"`
	} `json:"key"`
	Value *struct {
		Source struct {
			Seq int64 `json:"seq"`
		} `json:"source"`
	} `json:"value"`
}

// Read returns the file's complete lines as per topic and key markers, in
// file order, and an error for a line that appears twice or does not
// parse. A torn last line (a crash mid-write) is left out: the sink cuts
// it when it opens the file.
func Read(path string) (map[string][]string, int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	data = data[:bytes.LastIndexByte(data, '\n')+1]
	got := map[string][]string{}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	n := 0
	for sc.Scan() {
		n++
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, n, fmt.Errorf("line %d: %w", n, err)
		}
		at := fmt.Sprintf("%s/%d@%d", l.Topic, l.Partition, l.Offset)
		if seen[at] {
			return nil, n, fmt.Errorf("line %d: %s written twice", n, at)
		}
		seen[at] = true
		k := fmt.Sprintf("%s|%d", l.Topic, l.Key.ID)
		m := ""
		if l.Value == nil {
			// a tombstone carries no seq: it is the one after the last delete
			prev := got[k]
			if len(prev) == 0 {
				return nil, n, fmt.Errorf("line %d: a tombstone of %s before any event", n, k)
			}
			m = prev[len(prev)-1] + "+"
		} else {
			m = fmt.Sprint(l.Value.Source.Seq)
		}
		got[k] = append(got[k], m)
	}
	return got, n, sc.Err()
}

// Verify checks that the file holds exactly the first n events.
func Verify(path string, p connect.Params, n uint64) error {
	want, err := Expected(p, n)
	if err != nil {
		return err
	}
	got, lines, err := Read(path)
	if err != nil {
		return err
	}
	total := 0
	for k, w := range want {
		total += len(w)
		if g := got[k]; !slices.Equal(g, w) {
			i := 0
			for i < len(g) && i < len(w) && g[i] == w[i] {
				i++
			}
			return fmt.Errorf("key %s: %d events, want %d; from event %d on have %v, want %v", k, len(g), len(w), i, clip(g[i:]), clip(w[i:]))
		}
	}
	if lines != total {
		return fmt.Errorf("%d lines, want %d", lines, total)
	}
	return nil
}

func clip(s []string) []string {
	if len(s) > 12 {
		return append(s[:12:12], "...")
	}
	return s
}
