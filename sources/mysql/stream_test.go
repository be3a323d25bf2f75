package mysql

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/eddy-cdc/eddy/internal/testdb"
)

// While the captured table is idle and another is written, the source
// hands out position markers past its last change; reopened at one, it
// goes on with the next change, none before.
func TestMarkersFollowTheBinlog(t *testing.T) {
	params := origin(t, []string{"create table t (id int primary key)", "create table other (id int primary key)"}, "t")
	params["heartbeat_interval"] = "100ms"
	db := originDB(params)
	src := openSource(t, params, nil)
	testdb.MariaExec(t, db, "insert into t values (1)")
	last := pollN(t, src, 1)[0].Position
	testdb.MariaExec(t, db, "insert into other values (1)", "insert into other values (2)")
	var marker []byte
	deadline := time.Now().Add(10 * time.Second)
	for marker == nil && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		recs, err := src.Poll(ctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Topic != "" {
				t.Fatalf("a change of an uncaptured table: %v", r.Value)
			}
			if bytes.Compare(r.Position, last) <= 0 {
				t.Fatalf("marker %x not after the last change %x", r.Position, last)
			}
			marker = r.Position
		}
	}
	if marker == nil {
		t.Fatal("no position marker while the captured table was idle")
	}
	p, err := parsePosition(marker)
	if err != nil {
		t.Fatal(err)
	}
	if q, _ := parsePosition(last); p.at.pos <= q.at.pos && p.at.file == q.at.file {
		t.Errorf("marker at %s, not past the last change at %s", p.at, q.at)
	}
	src.Close()
	testdb.MariaExec(t, db, "insert into t values (2)")
	again := openSource(t, params, marker)
	got := pollN(t, again, 1)
	if id := got[0].Value.(map[string]any)["after"].(map[string]any)["id"]; id != int32(2) {
		t.Fatalf("after the marker came id %v, want 2", id)
	}
}
