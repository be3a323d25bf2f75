package registry

import (
	"bufio"
	"context"
	"fmt"
	"math/rand"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/eddy-cdc/eddy/internal/crashtest"
)

const crashChildEnv = "EDDY_REGISTRY_CRASH_CHILD"

// TestCrashChild registers new schemas until it is killed, printing each
// acknowledged registration.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("helper process for TestKill9KeepsRegistrations")
	}
	l := openLog(t, dir)
	r := openRegistry(t, l)
	out := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		subj := fmt.Sprintf("s%d", i%5)
		// A record with one more defaulted field each time: always BACKWARD compatible.
		schema := fmt.Sprintf(`{"type":"record","name":"r","fields":[{"name":"f%d_%d","type":"int","default":0}]}`, os.Getpid(), i)
		if err := r.SetLevel(context.Background(), subj, None); err != nil {
			fmt.Println("error", err)
			os.Exit(3)
		}
		id, v, err := r.Register(context.Background(), subj, schema, nil)
		if err != nil {
			fmt.Println("error", err)
			os.Exit(3)
		}
		fmt.Fprintf(out, "%d %s %d %s\n", id, subj, v, schema)
		out.Flush()
	}
}

func TestKill9KeepsRegistrations(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test is not short")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	type reg struct {
		subj    string
		version int
		schema  string
	}
	acked := map[int]reg{}
	for round := 0; round < 10; round++ {
		child := crashtest.Start(t, "TestCrashChild", crashChildEnv+"="+dir)
		for _, line := range child.KillAfterFirstLine(t, time.Duration(rng.Intn(300))*time.Millisecond) {
			var id, v int
			var subj string
			if _, err := fmt.Sscanf(line, "%d %s %d", &id, &subj, &v); err != nil {
				t.Fatalf("child said %q", line)
			}
			if prev, dup := acked[id]; dup {
				t.Fatalf("id %d acknowledged twice: %v and %s", id, prev, line)
			}
			acked[id] = reg{subj, v, line[strings.Index(line, "{"):]}
		}
		l := openLog(t, dir)
		r := openRegistry(t, l)
		for id, want := range acked {
			s, err := r.SchemaByID(id)
			if err != nil || s.Text != want.schema {
				t.Fatalf("round %d: acknowledged id %d lost: %v", round, id, err)
			}
			v, err := r.Get(want.subj, want.version, false)
			if err != nil || v.Schema.ID != id {
				t.Fatalf("round %d: %s version %d: %+v %v", round, want.subj, want.version, v, err)
			}
		}
		l.Close()
	}
	if len(acked) < 10 {
		t.Fatalf("only %d registrations acknowledged", len(acked))
	}
	t.Logf("%d acknowledged registrations survived 10 kill -9 rounds", len(acked))
}
