// Command bench compares tandem with HAProxy on loopback: throughput and
// latency of GET /hello (direct, through tandem, through HAProxy), then what
// clients see when the master is killed or stopped behind either proxy.
// With -scenarios it runs fault scenarios instead (slow, flapping,
// black-holed master, 5xx, both down, a data centre cut; some need root for
// network namespaces), and with -soak a long run of mixed load through
// tandem with switches and reloads.
//
//	go run ./bench                  # full run, a few minutes; writes bench/RESULTS.md
//	go run ./bench -quick           # under a minute
//	go run ./bench -scenarios all   # every fault scenario, about 6 minutes (-quick: 3)
//	go run ./bench -scenarios issue9 -repeat 3  # issue 9 items 4-9 beside HAProxy (-quick: 1,000 websockets)
//	go run ./bench -soak 10m        # the soak
//	go run ./bench -kube            # 3 replicas on a Kubernetes test bed: master and leader SIGKILL, planned switch, API cut; ~2 min
//
// RESULTS.md has a section per mode; a run rewrites its own and keeps the others.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// options are the command-line flags.
type options struct {
	tput    tputOpts
	fo      foOpts
	quick   bool
	tandem  string
	haproxy string
	out     string
	keep    bool
	nginx   string
	wrk     string
	noTput  bool
	tls     bool
	faults  string
	scen    []string
	soak    soakOpts
	kube    kubeOpts
	i9      i9Opts
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.BoolVar(&o.quick, "quick", false, "short run (under a minute): 1s measurements, shorter scenarios")
	fs.IntVar(&o.tput.Clients, "clients", 32, "concurrent keep-alive clients for throughput")
	fs.DurationVar(&o.tput.Duration, "duration", 5*time.Second, "length of one throughput measurement")
	fs.DurationVar(&o.tput.Warmup, "warmup", time.Second, "unmeasured load before each measurement")
	fs.IntVar(&o.tput.Runs, "runs", 3, "measurements per target (the median is reported)")
	fs.IntVar(&o.tput.MaxPer, "max-requests", 1_000_000, "bound of requests per client per measurement")
	fs.IntVar(&o.fo.Clients, "fo-clients", 50, "concurrent clients during the failover scenarios")
	fs.DurationVar(&o.fo.Length, "fo-length", 15*time.Second, "length of one failover scenario")
	fs.DurationVar(&o.fo.FaultAt, "fault-at", 2*time.Second, "when the master is killed or stopped, from the start of the load")
	fs.DurationVar(&o.fo.Outage, "outage", 6*time.Second, "from the fault to the restart (kill) or SIGCONT (stop)")
	fs.DurationVar(&o.fo.Timeout, "timeout", 10*time.Second, "client timeout of one request")
	fs.StringVar(&o.tandem, "tandem", "", "tandem binary (default: build ./cmd/tandem into a temp dir)")
	fs.StringVar(&o.haproxy, "haproxy", "", "haproxy binary (default: PATH, /usr/sbin, else apt-get install)")
	fs.StringVar(&o.nginx, "nginx", "", "nginx binary, a throughput baseline (default: PATH, /usr/sbin, else apt-get install)")
	fs.StringVar(&o.wrk, "wrk", "", "wrk binary, the C load generator of the throughput rows (default: PATH, else apt-get install)")
	fs.StringVar(&o.out, "out", "bench/RESULTS.md", "results file, relative to the module root; empty: none")
	fs.BoolVar(&o.keep, "keep", false, "keep the temp dir with configs and process logs")
	fs.BoolVar(&o.noTput, "skip-throughput", false, "only run the failover scenarios")
	fs.BoolVar(&o.tls, "tls", true, "measure throughput over HTTPS (HTTP/1.1) as well")
	fs.StringVar(&o.faults, "faults", "kill,stop", "failover scenarios of the default run, comma-separated; empty: none")
	scen := fs.String("scenarios", "", "run these fault scenarios instead of the default run: all, or some of "+strings.Join(allScenarios, ",")+
		"; issue9, or some of "+strings.Join(i9Scenarios, ",")+" (issue 9 items 4-9)")
	fs.IntVar(&o.i9.WS, "ws", 10_000, "issue 9 scenarios: websockets of fds and idle (the storm opens 99% of them)")
	fs.IntVar(&o.i9.Repeat, "repeat", 1, "issue 9 scenarios: runs behind each proxy (medians reported)")
	fs.DurationVar(&o.i9.StormPerTry, "storm-pertry", 0, "issue 9 storm: tandem's retry.perTryTimeout (0: none, its default)")
	proxies := fs.String("proxies", "tandem,HAProxy", "issue 9 scenarios: behind which proxies (tandem, HAProxy or both)")
	fs.DurationVar(&o.soak.Length, "soak", 0, "run the soak this long instead of the default run (e.g. 10m)")
	fs.DurationVar(&o.soak.Every, "soak-sample", 10*time.Second, "soak: how often to sample the gateway's memory, goroutines and fds")
	fs.DurationVar(&o.soak.SwitchEvery, "soak-switch", 20*time.Second, "soak: how often to switch to the backup or fail back")
	fs.DurationVar(&o.soak.ReloadEvery, "soak-reload", 30*time.Second, "soak: how often to reload the config (SIGHUP)")
	fs.BoolVar(&o.kube.On, "kube", false, "run three gateway replicas on a Kubernetes test bed instead of the default run")
	fs.IntVar(&o.kube.Runs, "kube-runs", 3, "kube: runs, each on a fresh test bed (medians reported)")
	fs.IntVar(&o.kube.Clients, "kube-clients", 8, "kube: load clients per replica")
	fs.DurationVar(&o.kube.Pause, "kube-pause", 5*time.Millisecond, "kube: pause between two requests of one client")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	var err error
	for p := range strings.SplitSeq(*proxies, ",") {
		switch k := proxyKind(strings.TrimSpace(p)); k {
		case kindTandem, kindHAProxy:
			o.i9.Proxies = append(o.i9.Proxies, k)
		default:
			return nil, fmt.Errorf("-proxies: unknown proxy %q (want tandem or HAProxy)", p)
		}
	}
	if o.scen, err = scenarioList(*scen); err != nil {
		return nil, err
	}
	if len(o.scen) > 0 && o.soak.Length > 0 || o.kube.On && (len(o.scen) > 0 || o.soak.Length > 0) {
		return nil, errors.New("-scenarios, -soak and -kube are separate runs")
	}
	if o.kube.On && (o.kube.Runs < 1 || o.kube.Clients < 1) {
		return nil, errors.New("-kube-runs and -kube-clients must be at least 1")
	}
	if o.quick {
		// Only the flags left at their defaults shrink, so -quick -runs 5 works.
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		shrink := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		shrink("duration", func() { o.tput.Duration = time.Second })
		shrink("warmup", func() { o.tput.Warmup = 200 * time.Millisecond })
		shrink("fo-length", func() { o.fo.Length = 7 * time.Second })
		shrink("fault-at", func() { o.fo.FaultAt = time.Second })
		shrink("outage", func() { o.fo.Outage = 3 * time.Second })
		shrink("timeout", func() { o.fo.Timeout = 5 * time.Second })
		shrink("ws", func() { o.i9.WS = 1000 })
	}
	o.tput.Timeout = 5 * time.Second
	if o.fo.FaultAt+o.fo.Outage >= o.fo.Length {
		return nil, fmt.Errorf("-fault-at %v + -outage %v must end before -fo-length %v", o.fo.FaultAt, o.fo.Outage, o.fo.Length)
	}
	for _, f := range o.faultList() {
		if f != faultKill && f != faultStop {
			return nil, fmt.Errorf("-faults: unknown fault %q (want kill or stop)", f)
		}
	}
	if o.tput.Clients < 1 || o.fo.Clients < 1 || o.tput.Runs < 1 || o.i9.WS < 1 || o.i9.Repeat < 1 {
		return nil, errors.New("-clients, -fo-clients, -runs, -ws and -repeat must be at least 1")
	}
	return o, nil
}

func (o *options) faultList() []fault {
	var out []fault
	for f := range strings.SplitSeq(o.faults, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, fault(f))
		}
	}
	return out
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == helperCmd {
		// A helper backend of the issue 9 scenarios (helper.go).
		if err := runHelper(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench backend:", err)
			os.Exit(1)
		}
		return
	}
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	// Ctrl-C and SIGTERM cancel ctx; run's deferred cleanup then kills the
	// children before main returns.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, o *options) (err error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "tandem-bench-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	e := &env{ps: &procs{dir: dir}, dir: dir}
	defer func() {
		e.ps.killAll()
		// After the kills: a namespace with a process in it outlives its name.
		if e.lab != nil {
			e.lab.close()
		}
		// Logs explain a failure: keep them then, and say where.
		if o.keep || err != nil {
			fmt.Fprintln(os.Stderr, "configs and logs kept in", dir)
			return
		}
		os.RemoveAll(dir)
	}()
	if o.kube.On {
		return runKubeMode(ctx, e, root, o)
	}
	if err := e.setup(ctx, root, o); err != nil {
		return err
	}
	rep := &report{Command: command(), Date: time.Now(), Tandem: e.tandemSrc, HAProxyV: e.haproxyV, RetryOn: e.retryOnOK,
		NginxV: e.nginxV, WrkV: e.wrkV,
		NProc: nproc(ctx), LoadPre: loadavg(), GoVer: runtime.Version(), Tput: o.tput, FO: o.fo}

	switch {
	case o.soak.Length > 0:
		if rep.Soak, err = runSoak(ctx, e, o.soak); err != nil {
			return fmt.Errorf("soak: %w", err)
		}
		rep.LoadPost = loadavg()
		if err := publish(rep, root, o.out); err != nil {
			return err
		}
		// The figure that must be zero fails the run, so scripts and CI see it.
		if n := rep.Soak.failedReplayable(); n != 0 {
			return fmt.Errorf("soak: %d replayable requests failed (the gateway's log is kept)", n)
		}
		return nil
	case len(o.scen) > 0:
		var fo, i9 []string
		for _, name := range o.scen {
			if i9Scenario(name, o.i9) != nil {
				i9 = append(i9, name)
			} else {
				fo = append(fo, name)
			}
		}
		if len(fo) > 0 {
			if rep.Scenarios, err = runScenarios(ctx, e, fo, o.fo); err != nil {
				return fmt.Errorf("scenarios: %w", err)
			}
		}
		rep.I9Opts = o.i9
		if len(i9) > 0 {
			if rep.I9, err = runI9(ctx, e, i9, o.i9); err != nil {
				return fmt.Errorf("issue 9 scenarios: %w", err)
			}
		}
		rep.LoadPost = loadavg()
		return publish(rep, root, o.out)
	}
	rep.Main = true
	if !o.noTput {
		if o.tls {
			if o.tput.TLS, err = newBenchCert(e.dir); err != nil {
				return err
			}
		}
		fmt.Fprintf(os.Stderr, "throughput: %d clients, %d×%v per target\n", o.tput.Clients, o.tput.Runs, o.tput.Duration)
		err = retryDied("throughput", 3, func() (err error) {
			rep.Through, err = measureThroughput(ctx, e, o.tput)
			return err
		})
		if err != nil {
			return fmt.Errorf("throughput: %w", err)
		}
	}
	var names []string
	for _, f := range o.faultList() {
		names = append(names, string(f))
	}
	res, err := runScenarios(ctx, e, names, o.fo)
	if err != nil {
		return fmt.Errorf("failover: %w", err)
	}
	for _, r := range res {
		rep.Failover = append(rep.Failover, r.foResult)
	}
	rep.LoadPost = loadavg()
	return publish(rep, root, o.out)
}

// setup finds or builds the binaries the run needs.
func (e *env) setup(ctx context.Context, root string, o *options) error {
	var err error
	if e.haproxy, err = findHAProxy(ctx, o.haproxy); err != nil {
		return err
	}
	if e.haproxyV, err = toolVersion(ctx, e.haproxy); err != nil {
		return err
	}
	e.retryOnOK = supportsRetryOn(e.haproxyV)
	if !o.noTput && len(o.scen) == 0 && o.soak.Length == 0 {
		if e.nginx, err = findTool(ctx, o.nginx, "nginx", "nginx"); err != nil {
			return err
		}
		if e.wrk, err = findTool(ctx, o.wrk, "wrk", "wrk"); err != nil {
			return err
		}
		if e.nginxV, err = toolVersion(ctx, e.nginx); err != nil {
			return err
		}
		if e.wrkV, err = toolVersion(ctx, e.wrk); err != nil {
			return err
		}
	}
	e.tandem, e.tandemSrc = o.tandem, "binary "+o.tandem
	if e.tandem == "" {
		e.tandemSrc = "built from the working tree at " + gitRev(ctx, root)
		fmt.Fprintln(os.Stderr, "building ./cmd/tandem")
		if e.tandem, err = buildTandem(ctx, root, e.dir); err != nil {
			return err
		}
	}
	return nil
}

// publish prints the tables and writes the results file: the sections
// this run produced replace their old versions, the others are kept.
func publish(rep *report, root, out string) error {
	fmt.Println()
	rep.tables(os.Stdout)
	if out == "" {
		return nil
	}
	path := out
	if !filepath.IsAbs(path) {
		path = filepath.Join(root, out)
	}
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read results: %w", err)
	}
	if err := os.WriteFile(path, rep.merge(old), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	fmt.Fprintln(os.Stderr, "\nwrote", path)
	return nil
}

// command is how this run was invoked, for the record; under go run
// os.Args[0] is a temporary binary, so it is spelled as the user typed it.
func command() string {
	return strings.TrimSpace("go run ./bench " + strings.Join(os.Args[1:], " "))
}
