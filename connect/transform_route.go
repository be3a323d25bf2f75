package connect

import (
	"fmt"
	"regexp"

	elog "github.com/eddy-cdc/eddy/log"
)

// route: Kafka Connect's RegexRouter.
type route struct {
	re   *regexp.Regexp
	repl string
	memo map[string]string
}

func newRoute(p Params) (*route, error) {
	re, err := regexp.Compile("^(?:" + p.String("regex") + ")$")
	if err != nil {
		return nil, fmt.Errorf("regex: %v", err)
	}
	return &route{re: re, repl: p.String("replacement"), memo: map[string]string{}}, nil
}

func (t *route) Apply(r *Record) (bool, error) {
	out, ok := t.memo[r.Topic]
	if !ok {
		out = r.Topic
		if m := t.re.FindStringSubmatchIndex(r.Topic); m != nil {
			out = string(t.re.ExpandString(nil, t.repl, r.Topic, m))
		}
		if err := elog.ValidateTopicName(out); err != nil {
			return false, fmt.Errorf("route %s -> %q: %w", r.Topic, out, err)
		}
		if len(t.memo) < 10000 {
			t.memo[r.Topic] = out
		}
	}
	r.Topic = out
	return true, nil
}
