package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// markI9 starts the section of the issue 9 scenarios (items 4 to 9).
const markI9 = "<!-- bench:issue9 -->"

// After the kept sections (issue 9 items 1-3, by hand), before -kube's.
func init() { sectionMarks = append(sectionMarks, markI9) }

// i9Names lists the issue 9 scenarios of the run in order.
func (r *report) i9Names() []string {
	var names []string
	for _, x := range r.I9 {
		if !slices.Contains(names, x.Scenario) {
			names = append(names, x.Scenario)
		}
	}
	return names
}

// i9Cell is a figure over the runs of one proxy: the median, with every
// run's value beside it when there are several.
func i9Cell(runs []figure) string {
	if len(runs) == 0 {
		return "—"
	}
	numeric := true
	for _, f := range runs {
		if math.IsNaN(f.Val) {
			numeric = false
		}
	}
	if !numeric || len(runs) == 1 {
		var parts []string
		for _, f := range runs {
			if s := f.String(); !slices.Contains(parts, s) {
				parts = append(parts, s)
			}
		}
		return strings.Join(parts, " / ")
	}
	sorted := slices.Clone(runs)
	slices.SortFunc(sorted, func(a, b figure) int {
		switch {
		case a.Val < b.Val:
			return -1
		case a.Val > b.Val:
			return 1
		}
		return 0
	})
	med := sorted[(len(sorted)-1)/2]
	var each []string
	for _, f := range runs {
		each = append(each, fmt.Sprintf(f.Fmt, f.Val))
	}
	return fmt.Sprintf("**%s** (%s)%s", fmt.Sprintf(med.Fmt, med.Val), strings.Join(each, ", "), prefixSpace(med.Text))
}

func prefixSpace(s string) string {
	if s == "" {
		return ""
	}
	return " " + s
}

// i9Table is one scenario's figures, tandem beside HAProxy.
func (r *report) i9Table(w io.Writer, name string) {
	byKind := map[proxyKind]map[string][]figure{}
	var labels []string
	for _, kind := range []proxyKind{kindTandem, kindHAProxy} {
		byKind[kind] = map[string][]figure{}
		for _, x := range r.I9 {
			if x.Scenario != name || x.Proxy != kind {
				continue
			}
			for _, f := range x.Figs {
				if !slices.Contains(labels, f.Label) {
					labels = append(labels, f.Label)
				}
				byKind[kind][f.Label] = append(byKind[kind][f.Label], f)
			}
		}
	}
	fmt.Fprintln(w, "| | tandem | HAProxy |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, l := range labels {
		row(w, l, cellText(i9Cell(byKind[kindTandem][l])), cellText(i9Cell(byKind[kindHAProxy][l])))
	}
}

// cellText keeps a table cell on one line.
func cellText(s string) string {
	return strings.NewReplacer("|", "\\|", "\n", " ").Replace(s)
}

func (r *report) i9Tables(w io.Writer) {
	for _, name := range r.i9Names() {
		def := i9Scenario(name, r.I9Opts)
		fmt.Fprintf(w, "\nItem %s: %s (`%s`)\n\n", def.Item, def.Title, name)
		r.i9Table(w, name)
	}
}

func (r *report) i9Markdown(w io.Writer) {
	fmt.Fprintln(w, markI9)
	fmt.Fprintf(w, "# Issue 9: items 4-9 beside HAProxy\n\n")
	r.context(w)
	runs := "one run"
	if r.I9Opts.Repeat > 1 {
		runs = fmt.Sprintf("%d runs, interleaved; a cell shows the median in bold, then each run's value", r.I9Opts.Repeat)
	}
	fmt.Fprintf(w, "Each scenario runs the same fault behind tandem and behind HAProxy, on fresh processes "+
		"per run (%s). Both proxies get the checks of the other scenarios: GET /status expecting "+
		"\"version\", interval 1s, 250ms while changing and while down, timeout 500ms, rise 2, fall 2. "+
		"The helper backends are the bench binary itself (`bench backend`, bench/helper.go).\n", runs)
	for _, name := range r.i9Names() {
		def := i9Scenario(name, r.I9Opts)
		fmt.Fprintf(w, "\n## Item %s: %s (`%s`)\n\n%s\n\n", def.Item, def.Title, name, def.Setup)
		r.i9Table(w, name)
	}
}
