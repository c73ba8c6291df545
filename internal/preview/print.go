package preview

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteJSON writes results as one JSON array.
func WriteJSON(w io.Writer, results []Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(results)
}

// WriteTable writes each result as kubectl prints objects: a line on the
// metric and its condition, the series as a table, then the cost.
func WriteTable(w io.Writer, results []Result) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, r := range results {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		fmt.Fprintf(tw, "%s %s/%s", r.Kind, r.Namespace, r.Name)
		if r.Metric != "" {
			fmt.Fprintf(tw, " exports %s", r.Metric)
		}
		fmt.Fprintf(tw, "\nREADY: %s  REASON: %s\n", r.Ready, r.Reason)
		if r.Message != "" {
			fmt.Fprintf(tw, "MESSAGE: %s\n", r.Message)
		}
		if len(r.Labels) > 0 {
			header := make([]string, 0, len(r.Labels)+1)
			for _, l := range r.Labels {
				header = append(header, strings.ToUpper(l))
			}
			fmt.Fprintln(tw, strings.Join(append(header, "VALUE"), "\t"))
			for _, s := range r.Series {
				row := make([]string, 0, len(s.Values)+1)
				for _, v := range s.Values {
					if v == "" {
						v = "<none>"
					}
					row = append(row, v)
				}
				fmt.Fprintln(tw, strings.Join(append(row, fmt.Sprint(s.Value)), "\t"))
			}
			if len(r.Series) == 0 {
				fmt.Fprintln(tw, "(no series: no object matches)")
			}
		}
		if c := r.Cost; c != nil {
			what := "full objects"
			if c.MetadataOnly {
				what = "metadata only"
			}
			fmt.Fprintf(tw, "COST: %d objects read in %d LIST page(s); event-driven it shares the watch %s (%s)\n",
				c.ObjectsRead, c.ListPages, c.Watch, what)
		}
	}
	return tw.Flush()
}
