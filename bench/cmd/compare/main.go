// Command compare measures mitoken and azidentity's
// ManagedIdentityCredential side by side against one mitokentest emulator
// on loopback and prints a markdown table: measure | mitoken | azidentity |
// ratio. Run it from the bench module:
//
//	cd bench && go run ./cmd/compare
//
// It takes about two minutes, most of it waiting for azidentity's first
// call with nothing listening, which retries for well over a minute (that
// wait runs alongside the other measures; -fast skips it).
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/mitoken/mitoken/bench"
	"github.com/mitoken/mitoken/mitokentest"
)

func main() {
	testing.Init()
	benchtime := flag.Duration("benchtime", time.Second, "run time of each ns/op benchmark")
	callers := flag.Int("callers", bench.Callers, "concurrent callers in the cold and refresh-storm measures")
	reps := flag.Int("reps", 3, "repetitions of each cold measure (the median is shown)")
	fast := flag.Bool("fast", false, "skip azidentity's first call with nothing listening (it retries for about 100 s)")
	flag.Parse()
	if err := flag.Set("test.benchtime", benchtime.String()); err != nil {
		fatal(err)
	}
	// A safety net like the tests' TestMain: nothing built with defaults may
	// reach the real IMDS address.
	closed, err := bench.ClosedLoopbackAddr()
	if err != nil {
		fatal(err)
	}
	os.Setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://"+closed)

	t := &table{}
	t.note("command: `cd bench && go run ./cmd/compare %s`", strings.Join(os.Args[1:], " "))
	t.note("machine: %s, %d CPUs (GOMAXPROCS %d), %s %s/%s, azidentity %s, azcore %s",
		cpuModel(), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH,
		depVersion("github.com/Azure/azure-sdk-for-go/sdk/azidentity"), depVersion("github.com/Azure/azure-sdk-for-go/sdk/azcore"))

	// 5, started first: azidentity's wait runs alongside the rest. Both
	// credentials are built now, before any rig changes the environment.
	slow := make(chan refusalPair, 1)
	{
		var firsts [2]func(context.Context) (bench.Refusal, error)
		for i, client := range bench.Both {
			if i == 1 && *fast {
				continue
			}
			if firsts[i], err = bench.NoListener(client, closed); err != nil {
				fatal(err)
			}
		}
		progress("5. first call with nothing listening at %s", closed)
		m, err := firsts[0](context.Background())
		if err != nil {
			fatal(err)
		}
		go func() {
			p := refusalPair{mitoken: m}
			if firsts[1] != nil {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
				defer cancel()
				p.azure, p.azureErr = firsts[1](ctx)
			}
			slow <- p
		}()
	}

	// 1. Cached hits, while azidentity's process-wide cache is small.
	for _, src := range []mitokentest.Source{mitokentest.IMDS, mitokentest.AppService} {
		for _, parallel := range []bool{false, true} {
			mode := "sequential"
			if parallel {
				mode = "RunParallel"
			}
			progress("1. cached GetToken, %s, %s", src, mode)
			var r [2]testing.BenchmarkResult
			for i, client := range bench.Both {
				r[i] = run(string(src)+"/"+client, bench.Cached(src, client, parallel))
			}
			name := fmt.Sprintf("1. cached GetToken, %s, %s", src, mode)
			t.row(name+": ns/op", nsPerOp(r[0]), nsPerOp(r[1]), "%.1f")
			t.row(name+": B/op", float64(r[0].AllocedBytesPerOp()), float64(r[1].AllocedBytesPerOp()), "%.0f")
			t.row(name+": allocs/op", float64(r[0].AllocsPerOp()), float64(r[1].AllocsPerOp()), "%.0f")
		}
	}

	// 2. Cold callers.
	for _, src := range []mitokentest.Source{mitokentest.IMDS, mitokentest.AppService} {
		progress("2. %d cold callers, %s", *callers, src)
		var reqs, walls [2][]float64
		for i, client := range bench.Both {
			r, err := bench.NewRig(src)
			if err != nil {
				fatal(err)
			}
			for range *reps {
				c := bench.Cold(context.Background(), r, client, *callers)
				if c.Errors > 0 {
					fatal(fmt.Errorf("%s: %d of %d cold callers failed; the first: %v", client, c.Errors, *callers, c.FirstErr))
				}
				reqs[i] = append(reqs[i], float64(c.Requests))
				walls[i] = append(walls[i], float64(c.Wall)/1e6)
			}
			if err := r.Close(); err != nil {
				fatal(err)
			}
		}
		name := fmt.Sprintf("2. %d cold callers, %s (median of %d)", *callers, src, *reps)
		t.row(name+": upstream requests", median(reqs[0]), median(reqs[1]), "%.0f")
		t.row(name+": wall time, ms", median(walls[0]), median(walls[1]), "%.1f")
	}

	// 3. Refresh storm.
	progress("3. refresh storm, %d callers", *callers)
	var storms [2]bench.StormResult
	for i, client := range bench.Both {
		r, err := bench.NewRig(mitokentest.IMDS, bench.StormOptions...)
		if err != nil {
			fatal(err)
		}
		if storms[i], err = bench.Storm(context.Background(), r, client, *callers, bench.StormDelay); err != nil {
			fatal(err)
		}
		if storms[i].Errors > 0 {
			fatal(fmt.Errorf("%s: %d storm callers failed; the first: %v", client, storms[i].Errors, storms[i].FirstErr))
		}
		if err := r.Close(); err != nil {
			fatal(err)
		}
	}
	name := fmt.Sprintf("3. refresh storm, IMDS, %d callers, refresh answered in %v", *callers, bench.StormDelay)
	t.row(name+": upstream requests", float64(storms[0].Requests), float64(storms[1].Requests), "%.0f")
	t.row(name+": callers that waited for the network", float64(storms[0].Waited), float64(storms[1].Waited), "%.0f")
	t.row(name+": slowest caller, ms", ms(storms[0].Latencies), ms(storms[1].Latencies), "%.2f")

	// 4. Authenticated GET.
	for _, loopback := range []bool{true, false} {
		where := "in-memory round tripper"
		if loopback {
			where = "loopback server"
		}
		progress("4. authenticated GET, %s", where)
		res := map[string]testing.BenchmarkResult{}
		for _, kind := range []string{bench.BareHTTP, bench.MitokenHTTP, bench.BarePipeline, bench.AzurePolicy} {
			res[kind] = run(where+"/"+kind, bench.AuthGET(kind, loopback))
		}
		m, a := res[bench.MitokenHTTP], res[bench.AzurePolicy]
		mb, ab := res[bench.BareHTTP], res[bench.BarePipeline]
		name := "4. authenticated GET, " + where
		t.row(name+": ns/op, bare client (http.Client; azcore pipeline)", nsPerOp(mb), nsPerOp(ab), "%.0f")
		t.row(name+": ns/op, with token (mitoken.Transport; bearer-token policy)", nsPerOp(m), nsPerOp(a), "%.0f")
		t.row(name+": overhead over its bare client, ns/op", nsPerOp(m)-nsPerOp(mb), nsPerOp(a)-nsPerOp(ab), "%.0f")
		t.row(name+": overhead, B/op", float64(m.AllocedBytesPerOp()-mb.AllocedBytesPerOp()), float64(a.AllocedBytesPerOp()-ab.AllocedBytesPerOp()), "%.0f")
		t.row(name+": overhead, allocs/op", float64(m.AllocsPerOp()-mb.AllocsPerOp()), float64(a.AllocsPerOp()-ab.AllocsPerOp()), "%.0f")
	}

	progress("5. waiting for azidentity's first call with nothing listening")
	p := <-slow
	if p.azureErr != nil {
		fatal(p.azureErr)
	}
	name = "5. first call, nothing listening (closed loopback port)"
	if *fast {
		t.text(name+": time to error", fmt.Sprintf("%.1f ms", float64(p.mitoken.Elapsed)/1e6), "not measured (-fast)", "")
	} else {
		t.row(name+": time to error, ms", float64(p.mitoken.Elapsed)/1e6, float64(p.azure.Elapsed)/1e6, "%.1f")
	}
	azText := "not measured (-fast)"
	if p.azure.Err != nil {
		azText = code(p.azure.Err.Error())
	}
	t.text(name+": error text", code(p.mitoken.Err.Error()), azText, "")

	t.print(os.Stdout)
}

type refusalPair struct {
	mitoken, azure bench.Refusal
	azureErr       error
}

// run runs one benchmark and exits when it failed.
func run(name string, f func(*testing.B)) testing.BenchmarkResult {
	r := testing.Benchmark(f)
	if r.N == 0 {
		fatal(fmt.Errorf("benchmark %s failed; run `go test -run '^$' -bench .` in bench/ to see why", name))
	}
	return r
}

func nsPerOp(r testing.BenchmarkResult) float64 { return float64(r.T.Nanoseconds()) / float64(r.N) }

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	for i := range s { // insertion sort: a handful of values
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// ms is the largest of sorted latencies, in milliseconds.
func ms(sorted []time.Duration) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sorted[len(sorted)-1]) / 1e6
}

// code formats an error's text for a table cell.
func code(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	s = strings.ReplaceAll(strings.TrimSpace(s), "\n", "<br>")
	return "`" + strings.ReplaceAll(s, "`", "'") + "`"
}

type table struct {
	notes []string
	rows  [][4]string
}

func (t *table) note(format string, args ...any) {
	t.notes = append(t.notes, fmt.Sprintf(format, args...))
}

// row adds a measure where less is better; ratio is azidentity ÷ mitoken.
func (t *table) row(name string, m, a float64, format string) {
	ratio := "—"
	switch {
	case m > 0 && a >= 0:
		ratio = fmt.Sprintf("%.1f×", a/m)
	case m == 0 && a == 0:
		ratio = "1×"
	}
	t.rows = append(t.rows, [4]string{name, fmt.Sprintf(format, m), fmt.Sprintf(format, a), ratio})
}

func (t *table) text(name, m, a, ratio string) {
	if ratio == "" {
		ratio = "—"
	}
	t.rows = append(t.rows, [4]string{name, m, a, ratio})
}

func (t *table) print(w io.Writer) {
	for _, n := range t.notes {
		fmt.Fprintf(w, "%s  \n", n)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| measure | mitoken | azidentity | ratio (azidentity ÷ mitoken) |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: |")
	for _, r := range t.rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", r[0], r[1], r[2], r[3])
	}
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "compare: "+format+"\n", args...)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "compare:", err)
	os.Exit(1)
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func depVersion(path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == path {
				return d.Version
			}
		}
	}
	return "unknown"
}
