package connect

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"

	elog "github.com/eddy-cdc/eddy/log"
)

// ConnectorSpec is one entry of `connectors` in eddy.yaml.
type ConnectorSpec struct {
	Name       string          `yaml:"name"`
	Plugin     string          `yaml:"plugin"`
	Topics     []string        `yaml:"topics"` // sinks: the topics to consume
	Config     yaml.Node       `yaml:"config"`
	Transforms []TransformSpec `yaml:"transforms"`
	Errors     ErrorsSpec      `yaml:"errors"`
	Schedule   string          `yaml:"schedule"` // cron; the connector runs until drained at each tick

	line   int
	lines  map[string]int
	kind   string
	params Params
}

// UnmarshalYAML refuses unknown keys and keeps each key's line.
func (c *ConnectorSpec) UnmarshalYAML(n *yaml.Node) error {
	type plain ConnectorSpec
	lines, err := decodeStrict(n, (*plain)(c), "connect.ConnectorSpec")
	c.line, c.lines = n.Line, lines
	return err
}

// Kind is source or sink.
func (c *ConnectorSpec) Kind() string { return c.kind }

// Params are the validated and defaulted plugin config.
func (c *ConnectorSpec) Params() Params { return c.params }

// TransformSpec is one transform of a connector: its plugin in `type`, its
// parameters beside it.
type TransformSpec struct {
	Type string

	line   int
	node   yaml.Node // the mapping without `type`
	params Params
}

// UnmarshalYAML splits `type` from the parameters.
func (t *TransformSpec) UnmarshalYAML(n *yaml.Node) error {
	t.line = n.Line
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: a transform is a mapping with a type and its parameters", n.Line)
	}
	t.node = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "type" {
			t.Type = n.Content[i+1].Value
			continue
		}
		t.node.Content = append(t.node.Content, n.Content[i], n.Content[i+1])
	}
	return nil
}

// ErrorsSpec is a connector's error handling, after Kafka Connect's
// errors.* settings.
type ErrorsSpec struct {
	Tolerance       string `yaml:"tolerance"`         // none (default): a record that cannot be handled fails the task; all: it goes to the dead-letter topic
	RetryTimeout    string `yaml:"retry_timeout"`     // how long a failing operation is retried before the record counts as failed (default 5m)
	RetryMaxDelay   string `yaml:"retry_max_delay"`   // the cap of the exponential backoff between retries (default 60s)
	DeadLetterTopic string `yaml:"dead_letter_topic"` // where failed records go under tolerance all
	Log             bool   `yaml:"log"`               // log each failed record (topic, partition, offset, error; never its value)

	lines map[string]int
	line  int
}

// UnmarshalYAML refuses unknown keys and keeps each key's line.
func (e *ErrorsSpec) UnmarshalYAML(n *yaml.Node) error {
	type plain ErrorsSpec
	lines, err := decodeStrict(n, (*plain)(e), "connect.ErrorsSpec")
	e.lines, e.line = lines, n.Line
	return err
}

// ErrorPolicy is an ErrorsSpec checked and with defaults.
type ErrorPolicy struct {
	TolerateAll     bool
	RetryTimeout    time.Duration
	RetryMaxDelay   time.Duration
	DeadLetterTopic string
	Log             bool
}

// Policy returns the checked policy (LoadConfig has validated it).
func (e ErrorsSpec) Policy() ErrorPolicy {
	p, _ := e.policy()
	return p
}

func (e ErrorsSpec) policy() (ErrorPolicy, error) {
	p := ErrorPolicy{RetryTimeout: 5 * time.Minute, RetryMaxDelay: 60 * time.Second, DeadLetterTopic: e.DeadLetterTopic, Log: e.Log}
	switch e.Tolerance {
	case "", "none":
	case "all":
		p.TolerateAll = true
	default:
		return p, &paramError{e.lines["tolerance"], "tolerance", fmt.Sprintf("%q is not none or all", e.Tolerance)}
	}
	for _, d := range []struct {
		key, v string
		dst    *time.Duration
	}{{"retry_timeout", e.RetryTimeout, &p.RetryTimeout}, {"retry_max_delay", e.RetryMaxDelay, &p.RetryMaxDelay}} {
		if d.v == "" {
			continue
		}
		v, err := time.ParseDuration(d.v)
		if err != nil || v < 0 {
			return p, &paramError{e.lines[d.key], d.key, fmt.Sprintf("%q is not a duration such as 30s or 5m", d.v)}
		}
		*d.dst = v
	}
	if p.DeadLetterTopic != "" {
		if err := elog.ValidateTopicName(p.DeadLetterTopic); err != nil {
			return p, &paramError{e.lines["dead_letter_topic"], "dead_letter_topic", err.Error()}
		}
		if !p.TolerateAll {
			return p, &paramError{e.lines["dead_letter_topic"], "dead_letter_topic", "records go to the dead-letter topic only under tolerance: all"}
		}
	}
	return p, nil
}

// JobSpec is one entry of `jobs`: a job plugin run on a cron schedule.
type JobSpec struct {
	Name     string    `yaml:"name"`
	Plugin   string    `yaml:"plugin"`
	Config   yaml.Node `yaml:"config"`
	Schedule string    `yaml:"schedule"`

	line   int
	lines  map[string]int
	params Params
}

// UnmarshalYAML refuses unknown keys and keeps each key's line.
func (j *JobSpec) UnmarshalYAML(n *yaml.Node) error {
	type plain JobSpec
	lines, err := decodeStrict(n, (*plain)(j), "connect.JobSpec")
	j.line, j.lines = n.Line, lines
	return err
}

// Params are the validated job config.
func (j *JobSpec) Params() Params { return j.params }

var connectorNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$`)

// CronParser parses schedules: five fields (minute hour day month weekday)
// or a descriptor such as @hourly or @every 10m.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule parses a cron schedule as eddy.yaml takes it.
func ParseSchedule(s string) (cron.Schedule, error) { return cronParser.Parse(s) }

// checkConnectors validates connectors and jobs against the catalog and
// fills in their params; errors are "file:line: key: reason".
func (c *Config) checkConnectors(path string, cat *Catalog) error {
	at := func(line int, key, format string, args ...any) error {
		return fmt.Errorf("%s:%d: %s: %s", path, line, key, fmt.Sprintf(format, args...))
	}
	paramErr := func(prefix string, err error) error {
		if pe, ok := err.(*paramError); ok {
			key := prefix
			if pe.key != "" {
				key += "." + pe.key
			}
			return at(pe.line, key, "%s", pe.msg)
		}
		return fmt.Errorf("%s: %s: %w", path, prefix, err)
	}
	names := map[string]string{}
	for i := range c.Connectors {
		cs := &c.Connectors[i]
		key := fmt.Sprintf("connectors[%d]", i)
		line := func(k string) int {
			if l := cs.lines[k]; l > 0 {
				return l
			}
			return cs.line
		}
		if cs.Name == "" {
			return at(cs.line, key+".name", "required")
		}
		if !connectorNameRE.MatchString(cs.Name) {
			return at(line("name"), key+".name", "%q: names are letters, digits, '.', '_' and '-', up to 200", cs.Name)
		}
		if prev, dup := names[cs.Name]; dup {
			return at(line("name"), key+".name", "%q is already the name of %s", cs.Name, prev)
		}
		names[cs.Name] = key
		if cs.Plugin == "" {
			return at(cs.line, key+".plugin", "required (sources: %s; sinks: %s)", strings.Join(cat.Names(KindSource), ", "), strings.Join(cat.Names(KindSink), ", "))
		}
		p := cat.Plugin(cs.Plugin)
		if p == nil || (p.Kind != KindSource && p.Kind != KindSink) {
			what := "not a known plugin"
			if p != nil {
				what = "a " + p.Kind + ", not a connector plugin"
			}
			return at(line("plugin"), key+".plugin", "%q is %s (sources: %s; sinks: %s)", cs.Plugin, what, strings.Join(cat.Names(KindSource), ", "), strings.Join(cat.Names(KindSink), ", "))
		}
		cs.kind = p.Kind
		switch {
		case p.Kind == KindSink && len(cs.Topics) == 0:
			return at(cs.line, key+".topics", "required: the topics sink %s consumes", cs.Name)
		case p.Kind == KindSource && len(cs.Topics) > 0:
			return at(line("topics"), key+".topics", "a source writes the topics its plugin names; topics is for sinks")
		}
		for j, t := range cs.Topics {
			if err := elog.ValidateTopicName(t); err != nil {
				return at(line("topics"), fmt.Sprintf("%s.topics[%d]", key, j), "%v", err)
			}
		}
		params, err := p.Validate(&cs.Config, line("config"))
		if err != nil {
			return paramErr(key+".config", err)
		}
		cs.params = params
		for j := range cs.Transforms {
			t := &cs.Transforms[j]
			tkey := fmt.Sprintf("%s.transforms[%d]", key, j)
			if t.Type == "" {
				return at(t.line, tkey+".type", "required (transforms: %s)", strings.Join(cat.Names(KindTransform), ", "))
			}
			tp := cat.Plugin(t.Type)
			if tp == nil || tp.Kind != KindTransform {
				return at(t.line, tkey+".type", "%q is not a transform (transforms: %s)", t.Type, strings.Join(cat.Names(KindTransform), ", "))
			}
			if t.params, err = tp.Validate(&t.node, t.line); err != nil {
				return paramErr(tkey, err)
			}
			if build, own := builtinTransform(tp.Name); own {
				if _, err := build(t.params); err != nil {
					return at(t.line, tkey, "%v", err)
				}
			} // a plugin's transform is built, and its params checked, when the worker adds the connector
		}
		if _, err := cs.Errors.policy(); err != nil {
			return paramErr(key+".errors", err)
		}
		if cs.Schedule != "" {
			if _, err := ParseSchedule(cs.Schedule); err != nil {
				return at(line("schedule"), key+".schedule", "%q: %v", cs.Schedule, err)
			}
		}
	}
	for i := range c.Jobs {
		js := &c.Jobs[i]
		key := fmt.Sprintf("jobs[%d]", i)
		if js.Name == "" {
			return at(js.line, key+".name", "required")
		}
		if prev, dup := names[js.Name]; dup {
			return at(js.lines["name"], key+".name", "%q is already the name of %s", js.Name, prev)
		}
		names[js.Name] = key
		p := cat.Plugin(js.Plugin)
		if p == nil || p.Kind != KindJob {
			return at(max(js.lines["plugin"], js.line), key+".plugin", "%q is not a job plugin (jobs: %s)", js.Plugin, strings.Join(cat.Names(KindJob), ", "))
		}
		if js.Schedule == "" && js.Plugin == "log-archive" {
			js.Schedule = DefaultArchiveSchedule
		}
		if js.Schedule == "" {
			return at(js.line, key+".schedule", "required: a job runs on its cron schedule")
		}
		if _, err := ParseSchedule(js.Schedule); err != nil {
			return at(js.lines["schedule"], key+".schedule", "%q: %v", js.Schedule, err)
		}
		params, err := p.Validate(&js.Config, max(js.lines["config"], js.line))
		if err != nil {
			return paramErr(key+".config", err)
		}
		js.params = params
	}
	return nil
}
