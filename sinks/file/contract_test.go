package file

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/eddy-cdc/eddy/connect/connecttest"
)

// file-sink under the sink contract: its destination is a JSON-lines file
// that holds every record once, in order.
func TestFileSinkContract(t *testing.T) {
	connecttest.SinkSuite(t, connecttest.SinkTarget{
		Plugin:    "file-sink",
		New:       New,
		Semantics: connecttest.Append,
		Destination: func(t *testing.T) map[string]any {
			return map[string]any{"path": filepath.Join(t.TempDir(), "out.jsonl")}
		},
		Read: func(t *testing.T, params map[string]any) []connecttest.Row {
			f, err := os.Open(params["path"].(string))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var rows []connecttest.Row
			sc := bufio.NewScanner(f)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				var line struct {
					Topic     string
					Partition int
					Offset    int64
					Value     struct {
						Before, After *struct {
							ID                int64
							V                 *string
							OrderID           int64 `json:"order_id"`
							Line, Qty, Weight int64
							SKU               string
							Price             float64
							Note              *string
						}
						Op string
					}
				}
				if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
					t.Fatalf("line %q: %v", sc.Text(), err)
				}
				row := connecttest.Row{Table: "parts", Partition: line.Partition, Offset: line.Offset, Op: line.Value.Op}
				img := line.Value.After
				if img == nil {
					img = line.Value.Before
				}
				switch {
				case line.Topic == connecttest.LinesTopic:
					row.Table, row.Key = "lines", connecttest.LinesKey(img.OrderID, img.Line)
					if line.Value.Op != "d" {
						row.Value = connecttest.LinesValue(img.SKU, img.Qty, img.Price, img.Note, img.Weight)
					}
				case img != nil:
					row.Key = fmt.Sprint(img.ID)
					if img.V != nil && line.Value.Op != "d" {
						row.Value = *img.V
					}
				}
				rows = append(rows, row)
			}
			if err := sc.Err(); err != nil {
				t.Fatal(err)
			}
			return rows
		},
		BadConfigs: []connecttest.BadConfig{
			{Params: map[string]any{}, Key: "path"},
			{Params: map[string]any{"path": "/tmp/x", "fsync": "sometimes"}, Key: "fsync"},
			{Params: map[string]any{"path": "/tmp/x", "colour": "red"}, Key: "colour"},
		},
	})
}
