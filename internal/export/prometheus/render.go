package prometheus

import (
	"hash/maphash"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// WriteText writes every served family in the Prometheus text format
// (version 0.0.4), each from its stored rendering, rendered again first
// when its family changed since. names, when not nil, keeps only the
// families named in it (a scrape's name[] parameters).
func (c *Collector) WriteText(w io.Writer, names map[string]struct{}) error {
	for _, text := range c.texts(names) {
		if _, err := w.Write(text); err != nil {
			return err
		}
	}
	return nil
}

// texts returns the current renderings of the served families (of those
// in names, when not nil), rendering the ones that changed. Every value
// is read when it returns, so a scrape can send its headers after.
func (c *Collector) texts(names map[string]struct{}) [][]byte {
	fams := c.families()
	out := make([][]byte, 0, len(fams))
	for _, e := range fams {
		if names != nil {
			if _, ok := names[e.name]; !ok {
				continue
			}
		}
		if !c.servable(e) {
			continue
		}
		if text := e.current(); len(text) > 0 {
			out = append(out, text)
		}
	}
	return out
}

// servesAll reports whether every name in names is a family the
// collector serves (and so none is the process's).
func (c *Collector) servesAll(names map[string]struct{}) bool {
	fams := c.families()
	for n := range names {
		i, found := slices.BinarySearchFunc(fams, n, func(e *entry, n string) int { return strings.Compare(e.name, n) })
		if !found || !c.servable(fams[i]) {
			return false
		}
	}
	return true
}

// current returns the entry's text for its family's current version.
func (e *entry) current() []byte {
	if e.family.Version == nil {
		return e.renderText(nil)
	}
	v := e.family.Version()
	if r := e.text.Load(); r != nil && r.version == v {
		return r.text
	}
	e.render.Lock()
	defer e.render.Unlock()
	r := e.text.Load()
	if r != nil && r.version == v {
		return r.text
	}
	// The version is read before the samples: a change that lands in
	// between is rendered now and again on the next scrape, never lost.
	var prev []byte
	if r != nil {
		prev = r.text
	}
	text := e.renderText(prev)
	e.text.Store(&rendered{version: v, text: text})
	return text
}

// renderText renders the family; prev, the last rendering, only sizes the
// buffer (a scrape may still be writing it). A family without samples
// renders as nothing, as the registry leaves out a family it collected
// nothing for.
func (e *entry) renderText(prev []byte) []byte {
	samples := e.samples()
	if len(samples) == 0 {
		return nil
	}
	buf := make([]byte, 0, max(len(prev)+len(prev)/8, len(e.header)+len(samples)*64))
	buf = append(buf, e.header...)
	for _, s := range samples {
		buf = append(buf, e.name...)
		for i, j := range e.order {
			if i == 0 {
				buf = append(buf, '{')
			} else {
				buf = append(buf, ',')
			}
			buf = append(buf, e.labels[j]...)
			buf = append(buf, '=', '"')
			buf = appendEscaped(buf, s.LabelValues[j], true)
			buf = append(buf, '"')
		}
		if len(e.order) > 0 {
			buf = append(buf, '}')
		}
		buf = append(buf, ' ')
		buf = appendFloat(buf, s.Value)
		buf = append(buf, '\n')
	}
	return buf
}

// appendHeader appends the HELP and TYPE lines of a gauge family.
func appendHeader(buf []byte, name, help string) []byte {
	buf = append(buf, "# HELP "...)
	buf = append(buf, name...)
	buf = append(buf, ' ')
	buf = appendEscaped(buf, help, false)
	buf = append(buf, "\n# TYPE "...)
	buf = append(buf, name...)
	return append(buf, " gauge\n"...)
}

// appendEscaped appends s escaped as the text format escapes HELP text
// (backslash and line feed) and, with quote, label values (also the
// double quote).
func appendEscaped(buf []byte, s string, quote bool) []byte {
	start := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch s[i] {
		case '\\':
			esc = `\\`
		case '\n':
			esc = `\n`
		case '"':
			if !quote {
				continue
			}
			esc = `\"`
		default:
			continue
		}
		buf = append(buf, s[start:i]...)
		buf = append(buf, esc...)
		start = i + 1
	}
	return append(buf, s[start:]...)
}

// appendFloat appends f as the text format writes sample values.
func appendFloat(buf []byte, f float64) []byte {
	switch f {
	case 0:
		return append(buf, '0')
	case 1:
		return append(buf, '1')
	case -1:
		return append(buf, "-1"...)
	}
	// Values are integers; NaN and the infinities cannot occur, and
	// AppendFloat writes them as the text format does not.
	return strconv.AppendFloat(buf, f, 'g', -1, 64)
}

// samples returns the family's samples as the registry would accept
// them: label values that are not UTF-8 repaired, samples with the wrong
// number of values left out, and samples whose label sets repeat an
// earlier one's summed into it, so that nothing is under-counted and no
// label set appears twice.
func (e *entry) samples() []Sample {
	samples := e.family.Samples()
	out := samples[:0]
	for _, s := range samples {
		if len(s.LabelValues) != len(e.labels) {
			continue
		}
		for i, v := range s.LabelValues {
			if !utf8.ValidString(v) {
				s.LabelValues[i] = strings.ToValidUTF8(v, "\uFFFD")
			}
		}
		out = append(out, s)
	}
	return merge(out)
}

var mergeSeed = maphash.MakeSeed()

// merge sums samples with equal label values into the first of them, in
// place; the order of the others is kept. Producers normally yield
// distinct label sets, so this costs one hash per sample.
func merge(samples []Sample) []Sample {
	if len(samples) < 2 {
		return samples
	}
	first := make(map[uint64]int, len(samples))
	out := samples[:0]
	for _, s := range samples {
		h := hashValues(s.LabelValues)
		if i, seen := first[h]; seen {
			if j := indexEqual(out, i, s.LabelValues); j >= 0 {
				out[j].Value += s.Value
				continue
			}
		} else {
			first[h] = len(out)
		}
		out = append(out, s)
	}
	return out
}

// indexEqual finds the sample with values from index i on: at i itself,
// unless two label sets share a hash, which needs a scan.
func indexEqual(samples []Sample, i int, values []string) int {
	if slices.Equal(samples[i].LabelValues, values) {
		return i
	}
	for j := i + 1; j < len(samples); j++ {
		if slices.Equal(samples[j].LabelValues, values) {
			return j
		}
	}
	return -1
}

func hashValues(values []string) uint64 {
	var h maphash.Hash
	h.SetSeed(mergeSeed)
	for _, v := range values {
		h.WriteString(v)
		h.WriteByte(0xff)
	}
	return h.Sum64()
}
