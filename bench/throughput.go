package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"
)

// tputOpts configures the throughput measurement.
type tputOpts struct {
	Clients  int
	Duration time.Duration
	Warmup   time.Duration
	Runs     int
	Timeout  time.Duration
	MaxPer   int
	// TLS, when set, adds tandem and HAProxy over HTTPS (HTTP/1.1) with it.
	TLS *benchCert
}

// Names of the HTTPS targets in the results.
const (
	tandemTLS  = string(kindTandem) + " TLS"
	haproxyTLS = string(kindHAProxy) + " TLS"
	nginxTLS   = string(kindNginx) + " TLS"
)

// tputRun is one measurement of one target.
type tputRun struct {
	RPS      float64
	P50, P99 time.Duration
	Failed   int // in a median: the total over all runs
	// CPU is the proxy's CPU time (user and system, its processes) per
	// request: on a shared machine it varies less than req/s, since it
	// does not count the time the proxy waited for a core. 0: direct.
	CPU time.Duration
}

// tputResult is every run of one target and their medians, by the
// bench's own load generator and by wrk.
type tputResult struct {
	Runs   []tputRun
	Median tputRun
	Wrk    []tputRun
	WrkMed tputRun
}

// target is one thing to send load to.
type target struct {
	name string
	url  string
	cpu  cpuMeter
}

// measureThroughput runs every target Runs times, interleaved (direct,
// tandem, HAProxy, nginx, then back: nginx, HAProxy, ...) so that a slow
// phase of the machine hits every target alike, each time with the
// bench's own load generator and then with wrk, and reports per-target
// medians.
func measureThroughput(ctx context.Context, e *env, o tputOpts) (map[string]*tputResult, error) {
	b, err := e.startBackends(ctx)
	if err != nil {
		return nil, err
	}
	defer b.kill()
	targets := []target{{name: "direct", url: "http://" + b.masterAddr}}
	var proxies []*proc
	defer func() {
		for _, p := range proxies {
			p.kill()
		}
	}()
	// Both proxies run through the whole phase; the idle one only probes.
	for _, kind := range []proxyKind{kindTandem, kindHAProxy} {
		g, err := e.startProxy(ctx, kind, b)
		if err != nil {
			return nil, err
		}
		proxies = append(proxies, g.proc)
		targets = append(targets, target{name: string(kind), url: g.url, cpu: g.proc.meter()})
	}
	// nginx is a baseline of throughput only: it has no active checks.
	var certs []*benchCert
	if e.nginx != "" {
		certs = append(certs, nil)
		if o.TLS != nil {
			certs = append(certs, o.TLS)
		}
	}
	for _, cert := range certs {
		g, err := e.startNginx(ctx, b, cert)
		if err != nil {
			return nil, err
		}
		proxies = append(proxies, g.proc)
		name := string(kindNginx)
		if cert != nil {
			name = nginxTLS
		}
		targets = append(targets, target{name: name, url: g.url, cpu: g.proc.meter()})
	}
	if o.TLS != nil {
		for _, t := range []struct {
			name string
			kind proxyKind
			ps   proxySetup
		}{
			{tandemTLS, kindTandem, proxySetup{tandem: tandemKnobs{TLS: o.TLS}}},
			{haproxyTLS, kindHAProxy, proxySetup{haproxy: haproxyKnobs{TLS: o.TLS}}},
		} {
			g, err := e.startProxyWith(ctx, t.kind, b, t.ps)
			if err != nil {
				return nil, err
			}
			proxies = append(proxies, g.proc)
			targets = append(targets, target{name: t.name, url: g.url, cpu: g.proc.meter()})
		}
	}
	res := map[string]*tputResult{}
	for run := range o.Runs {
		for _, t := range runOrder(targets, run) {
			r, err := measureOnce(ctx, t.url+"/hello", o, t.cpu)
			// A dead child explains a failed run better than its symptoms.
			if dead := alive(append(proxies, b.master, b.backup)...); dead != nil {
				err = dead
			}
			if err != nil {
				return nil, fmt.Errorf("%s run %d: %w", t.name, run+1, err)
			}
			fmt.Fprintf(os.Stderr, "  run %d %-11s %9.0f req/s  p50 %-9v p99 %-9v failed %d cpu/req %v\n", run+1, t.name, r.RPS, r.P50, r.P99, r.Failed, r.CPU)
			if res[t.name] == nil {
				res[t.name] = &tputResult{}
			}
			res[t.name].Runs = append(res[t.name].Runs, r)
			if e.wrk == "" {
				continue
			}
			// wrk right after, on the same target: the C load generator
			// takes less CPU, so the proxy's own cost shows more.
			w, err := e.measureWrk(ctx, t.url+"/hello", o.Duration, t.cpu)
			if dead := alive(append(proxies, b.master, b.backup)...); dead != nil {
				err = dead
			}
			if err != nil {
				return nil, fmt.Errorf("%s wrk run %d: %w", t.name, run+1, err)
			}
			fmt.Fprintf(os.Stderr, "  run %d %-11s %9.0f req/s  p50 %-9v p99 %-9v failed %d cpu/req %v (wrk)\n", run+1, t.name, w.RPS, w.P50, w.P99, w.Failed, w.CPU)
			res[t.name].Wrk = append(res[t.name].Wrk, w)
		}
	}
	for _, r := range res {
		r.Median = medianRun(r.Runs)
		if len(r.Wrk) > 0 {
			r.WrkMed = medianRun(r.Wrk)
		}
	}
	return res, nil
}

// runOrder is the order of the targets in run number run: as listed in
// even runs, reversed in odd ones, so that going first or after a given
// target (a backend still busy from the last load, a cache a neighbour
// filled) favours none of them over the runs.
func runOrder(targets []target, run int) []target {
	if run%2 == 0 {
		return targets
	}
	rev := slices.Clone(targets)
	slices.Reverse(rev)
	return rev
}

// measureOnce warms the connections up (not measured), then measures.
func measureOnce(ctx context.Context, url string, o tputOpts, cpu cpuMeter) (tputRun, error) {
	spec := loadSpec{URL: url, Clients: o.Clients, Duration: o.Warmup, Timeout: o.Timeout, MaxPer: o.MaxPer, Grace: o.Timeout}
	if o.Warmup > 0 {
		runLoad(ctx, spec, time.Now())
	}
	spec.Duration = o.Duration
	t0 := time.Now()
	perReq := cpu.start()
	samples := runLoad(ctx, spec, t0)
	elapsed := time.Since(t0)
	cpuPer := perReq(len(samples))
	if err := ctx.Err(); err != nil {
		return tputRun{}, fmt.Errorf("interrupted: %w", err)
	}
	var lat []time.Duration
	r := tputRun{}
	for _, s := range samples {
		if s.outcome == outOK {
			lat = append(lat, s.latency())
		} else {
			r.Failed++
		}
	}
	if len(lat) == 0 {
		return r, fmt.Errorf("no successful request to %s", url)
	}
	slices.Sort(lat)
	r.RPS = float64(len(lat)) / elapsed.Seconds()
	r.CPU = cpuPer
	r.P50, r.P99 = percentile(lat, 0.50), percentile(lat, 0.99)
	return r, nil
}

// percentile of sorted values, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(p*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// medianRun takes the median of each metric on its own: the medians need
// not come from the same run, but each is robust to one outlier run.
func medianRun(runs []tputRun) tputRun {
	rps := make([]float64, len(runs))
	p50 := make([]time.Duration, len(runs))
	p99 := make([]time.Duration, len(runs))
	cpu := make([]time.Duration, len(runs))
	failed := 0
	for i, r := range runs {
		rps[i], p50[i], p99[i], cpu[i] = r.RPS, r.P50, r.P99, r.CPU
		failed += r.Failed
	}
	return tputRun{RPS: median(rps), P50: median(p50), P99: median(p99), Failed: failed, CPU: median(cpu)}
}

func median[T float64 | time.Duration](v []T) T {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
