package log

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// OffsetSpec names a position in a partition: earliest, latest, an offset
// or a point in time.
type OffsetSpec struct {
	Kind   string // "earliest", "latest", "offset", "time"
	Offset int64
	Time   time.Time
}

// ParseOffsetSpec reads earliest | latest | offset:N | time:RFC3339.
func ParseOffsetSpec(s string) (OffsetSpec, error) {
	switch {
	case s == "earliest" || s == "latest":
		return OffsetSpec{Kind: s}, nil
	case strings.HasPrefix(s, "offset:"):
		n, err := strconv.ParseInt(strings.TrimPrefix(s, "offset:"), 10, 64)
		if err != nil || n < 0 {
			return OffsetSpec{}, fmt.Errorf("position %q: offset must be a whole number >= 0", s)
		}
		return OffsetSpec{Kind: "offset", Offset: n}, nil
	case strings.HasPrefix(s, "time:"):
		t, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(s, "time:"))
		if err != nil {
			return OffsetSpec{}, fmt.Errorf("position %q: time must be RFC 3339, like 2026-01-02T15:04:05Z: %w", s, err)
		}
		return OffsetSpec{Kind: "time", Time: t}, nil
	}
	return OffsetSpec{}, fmt.Errorf("position %q: want earliest, latest, offset:N or time:RFC3339", s)
}

func (s OffsetSpec) String() string {
	switch s.Kind {
	case "offset":
		return "offset:" + strconv.FormatInt(s.Offset, 10)
	case "time":
		return "time:" + s.Time.Format(time.RFC3339Nano)
	}
	return s.Kind
}

// Resolve turns a spec into an offset of p. An offset beyond the log is
// clamped into [log start, high watermark]; a time after every record
// resolves to the high watermark.
func (p *Partition) Resolve(s OffsetSpec) (int64, error) {
	switch s.Kind {
	case "earliest":
		return p.LogStartOffset(), nil
	case "latest":
		return p.HighWatermark(), nil
	case "offset":
		return min(max(s.Offset, p.LogStartOffset()), p.HighWatermark()), nil
	case "time":
		off, _, err := p.OffsetForTime(s.Time)
		return off, err
	}
	return 0, fmt.Errorf("resolve %s: unknown position kind %q", p, s.Kind)
}
