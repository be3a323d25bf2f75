package connect

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/eddy-cdc/eddy"
)

// Plugin kinds.
const (
	KindSource    = "source"
	KindSink      = "sink"
	KindTransform = "transform"
	KindJob       = "job"
)

// Parameter types of the catalog.
const (
	TypeString   = "string"
	TypeInt      = "int"
	TypeFloat    = "float"
	TypeBool     = "bool"
	TypeDuration = "duration"
	TypeList     = "list"
	TypeMap      = "map"
	TypeEnum     = "enum"
)

// Catalog is plugins.yaml: every plugin Eddy knows, by name. A connector's
// config is validated and defaulted against its plugin's entry, so a plugin
// receives Params whose every value has the declared type.
type Catalog struct {
	Plugins []*Plugin `yaml:"plugins"`
	byName  map[string]*Plugin
}

// Plugin is one catalog entry.
type Plugin struct {
	Name        string   `yaml:"name" json:"name"`
	Kind        string   `yaml:"kind" json:"kind"`
	Description string   `yaml:"description" json:"description"`
	Params      []*Param `yaml:"params" json:"params"`
}

// Param is one parameter of a plugin.
type Param struct {
	Name     string   `yaml:"name" json:"name"`
	Type     string   `yaml:"type" json:"type"`
	Default  any      `yaml:"default" json:"default,omitempty"`
	Required bool     `yaml:"required" json:"required"`
	Secret   bool     `yaml:"secret" json:"secret,omitempty"`
	Doc      string   `yaml:"doc" json:"doc"`
	Values   []string `yaml:"values" json:"values,omitempty"` // enum
	Min      *float64 `yaml:"min" json:"min,omitempty"`       // int, float
	Max      *float64 `yaml:"max" json:"max,omitempty"`

	def any // Default converted to the parameter's Go type
}

// BuiltinCatalog parses the plugins.yaml built into the binary.
func BuiltinCatalog() (*Catalog, error) {
	return ParseCatalog("plugins.yaml", []byte(eddy.PluginsYAML()))
}

var pluginNameRE = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)

// ParseCatalog reads and checks a catalog: known kinds and types, defaults
// of the declared type, no duplicate names.
func ParseCatalog(name string, data []byte) (*Catalog, error) {
	var node yaml.Node
	if err := yaml.Unmarshal(data, &node); err != nil {
		return nil, yamlError(name, err)
	}
	c := &Catalog{byName: map[string]*Plugin{}}
	if len(node.Content) == 0 {
		return nil, fmt.Errorf("%s: empty catalog", name)
	}
	if err := node.Content[0].Decode(c); err != nil {
		return nil, yamlError(name, err)
	}
	for _, p := range c.Plugins {
		if !pluginNameRE.MatchString(p.Name) {
			return nil, fmt.Errorf("%s: plugin %q: names are lower case letters, digits, _ and -", name, p.Name)
		}
		if c.byName[p.Name] != nil {
			return nil, fmt.Errorf("%s: plugin %s is listed twice", name, p.Name)
		}
		if !slices.Contains([]string{KindSource, KindSink, KindTransform, KindJob}, p.Kind) {
			return nil, fmt.Errorf("%s: plugin %s: kind %q is not source, sink, transform or job", name, p.Name, p.Kind)
		}
		c.byName[p.Name] = p
		seen := map[string]bool{}
		for _, prm := range p.Params {
			if seen[prm.Name] {
				return nil, fmt.Errorf("%s: plugin %s: parameter %s is listed twice", name, p.Name, prm.Name)
			}
			seen[prm.Name] = true
			if prm.Type == TypeEnum && len(prm.Values) == 0 {
				return nil, fmt.Errorf("%s: plugin %s: parameter %s: an enum needs values", name, p.Name, prm.Name)
			}
			if prm.Required {
				if prm.Default != nil {
					return nil, fmt.Errorf("%s: plugin %s: parameter %s: required parameters have no default", name, p.Name, prm.Name)
				}
				continue
			}
			var n yaml.Node
			if err := n.Encode(prm.Default); err != nil {
				return nil, fmt.Errorf("%s: plugin %s: parameter %s: default: %w", name, p.Name, prm.Name, err)
			}
			if prm.Default == nil {
				return nil, fmt.Errorf("%s: plugin %s: parameter %s: needs a default or required: true", name, p.Name, prm.Name)
			}
			v, err := prm.convert(&n)
			if err != nil {
				return nil, fmt.Errorf("%s: plugin %s: parameter %s: default: %w", name, p.Name, prm.Name, err)
			}
			prm.def = v
		}
	}
	return c, nil
}

// Plugin returns the named plugin, or nil.
func (c *Catalog) Plugin(name string) *Plugin { return c.byName[name] }

// Names lists the plugins of a kind ("" for all), sorted.
func (c *Catalog) Names(kind string) []string {
	var out []string
	for _, p := range c.Plugins {
		if kind == "" || p.Kind == kind {
			out = append(out, p.Name)
		}
	}
	sort.Strings(out)
	return out
}

// Param returns the named parameter, or nil.
func (p *Plugin) Param(name string) *Param {
	for _, prm := range p.Params {
		if prm.Name == name {
			return prm
		}
	}
	return nil
}

// paramError is a config error at a parameter: the caller adds the file
// and the path of the key.
type paramError struct {
	line int
	key  string
	msg  string
}

func (e *paramError) Error() string { return fmt.Sprintf("line %d: %s: %s", e.line, e.key, e.msg) }

// Validate checks a config mapping (nil when the connector has none)
// against the plugin, fills in defaults and returns typed Params. Errors
// are *paramError naming the line and the parameter.
func (p *Plugin) Validate(node *yaml.Node, line int) (Params, error) {
	vals := map[string]any{}
	lines := map[string]int{}
	if node != nil && node.Kind != 0 && !(node.Kind == yaml.ScalarNode && node.Tag == "!!null") {
		if node.Kind != yaml.MappingNode {
			return Params{}, &paramError{node.Line, "", "must be a mapping of parameter: value"}
		}
		for i := 0; i+1 < len(node.Content); i += 2 {
			k, v := node.Content[i], node.Content[i+1]
			prm := p.Param(k.Value)
			if prm == nil {
				return Params{}, &paramError{k.Line, k.Value, fmt.Sprintf("unknown parameter of %s (it takes %s)", p.Name, p.paramNames())}
			}
			if _, dup := vals[k.Value]; dup {
				return Params{}, &paramError{k.Line, k.Value, "set twice"}
			}
			val, err := prm.convert(v)
			if err != nil {
				return Params{}, &paramError{v.Line, k.Value, err.Error()}
			}
			vals[k.Value], lines[k.Value] = val, k.Line
		}
	}
	for _, prm := range p.Params {
		if _, ok := vals[prm.Name]; ok {
			continue
		}
		if prm.Required {
			return Params{}, &paramError{line, prm.Name, fmt.Sprintf("required by %s", p.Name)}
		}
		vals[prm.Name] = prm.def
	}
	return Params{plugin: p, values: vals, lines: lines}, nil
}

func (p *Plugin) paramNames() string {
	if len(p.Params) == 0 {
		return "no parameters"
	}
	names := make([]string, len(p.Params))
	for i, prm := range p.Params {
		names[i] = prm.Name
	}
	return strings.Join(names, ", ")
}

// convert reads a YAML value as the parameter's type.
func (prm *Param) convert(n *yaml.Node) (any, error) {
	scalar := func() (string, error) {
		if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
			return "", fmt.Errorf("must be a %s", prm.Type)
		}
		return n.Value, nil
	}
	switch prm.Type {
	case TypeString:
		s, err := scalar()
		return s, err
	case TypeInt:
		s, err := scalar()
		if err != nil {
			return nil, err
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not an integer", s)
		}
		return v, prm.checkRange(float64(v))
	case TypeFloat:
		s, err := scalar()
		if err != nil {
			return nil, err
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", s)
		}
		return v, prm.checkRange(v)
	case TypeBool:
		s, err := scalar()
		if err != nil {
			return nil, err
		}
		switch s {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, fmt.Errorf("%q is not true or false", s)
	case TypeDuration:
		s, err := scalar()
		if err != nil {
			return nil, err
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("%q is not a duration such as 500ms, 30s or 1h", s)
		}
		return d, nil
	case TypeEnum:
		s, err := scalar()
		if err != nil {
			return nil, err
		}
		if !slices.Contains(prm.Values, s) {
			return nil, fmt.Errorf("%q is not one of %s", s, strings.Join(prm.Values, ", "))
		}
		return s, nil
	case TypeList:
		if n.Kind != yaml.SequenceNode {
			return nil, fmt.Errorf("must be a list such as [a, b]")
		}
		out := make([]string, 0, len(n.Content))
		for _, e := range n.Content {
			if e.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("list items must be plain values")
			}
			out = append(out, e.Value)
		}
		return out, nil
	case TypeMap:
		if n.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("must be a mapping such as {a: b}")
		}
		out := make(map[string]string, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i+1].Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("%s: values must be plain values", n.Content[i].Value)
			}
			out[n.Content[i].Value] = n.Content[i+1].Value
		}
		return out, nil
	}
	return nil, fmt.Errorf("catalog type %q is unknown", prm.Type)
}

func (prm *Param) checkRange(v float64) error {
	if prm.Min != nil && v < *prm.Min {
		return fmt.Errorf("%v is below the minimum %v", v, *prm.Min)
	}
	if prm.Max != nil && v > *prm.Max {
		return fmt.Errorf("%v is above the maximum %v", v, *prm.Max)
	}
	return nil
}

// Params are a plugin's validated config: every parameter is present with
// its declared type, so the accessors need no error.
type Params struct {
	plugin *Plugin
	values map[string]any
	lines  map[string]int
}

// NewParams validates values (as YAML would write them) against p; for
// tests and programmatic use.
func NewParams(p *Plugin, values map[string]any) (Params, error) {
	var n yaml.Node
	if err := n.Encode(values); err != nil {
		return Params{}, err
	}
	return p.Validate(&n, 0)
}

func (p Params) String(name string) string          { s, _ := p.values[name].(string); return s }
func (p Params) Int(name string) int64              { v, _ := p.values[name].(int64); return v }
func (p Params) Float(name string) float64          { v, _ := p.values[name].(float64); return v }
func (p Params) Bool(name string) bool              { v, _ := p.values[name].(bool); return v }
func (p Params) Duration(name string) time.Duration { v, _ := p.values[name].(time.Duration); return v }
func (p Params) Strings(name string) []string       { v, _ := p.values[name].([]string); return v }
func (p Params) Map(name string) map[string]string {
	v, _ := p.values[name].(map[string]string)
	return v
}

// Has reports whether the parameter exists for this plugin.
func (p Params) Has(name string) bool { _, ok := p.values[name]; return ok }

// Line is where the parameter was written (0 when defaulted).
func (p Params) Line(name string) int { return p.lines[name] }

// Redacted returns the values for display, secrets replaced.
func (p Params) Redacted() map[string]any {
	out := make(map[string]any, len(p.values))
	for k, v := range p.values {
		if prm := p.plugin.Param(k); prm != nil && prm.Secret && v != "" {
			v = "<redacted>"
		}
		if d, ok := v.(time.Duration); ok {
			v = d.String()
		}
		out[k] = v
	}
	return out
}
