package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mitoken/mitoken"
	"github.com/mitoken/mitoken/mitokentest"
)

const demoHelp = `
Starts the managed-identity emulator in this process and shows the library
at work, with no Azure and no setup:

  1. a token from each source (IMDS, App Service, Azure Arc), claims decoded;
  2. 1,000 concurrent GetToken calls answered by 1 request;
  3. the Transport calling a local https endpoint that checks the token;
  4. an endpoint answering 503, 503, 200, retried.

Tokens are shown only as a short prefix.`

// Demo resources: what the tokens are for.
const (
	demoVault = "https://vault.azure.net"
	demoAPI   = "api://mitoken-demo"
)

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("demo", "", demoHelp)
	if code := parse(fs, args, stdout, stderr); code >= 0 {
		return code
	}
	srv, err := mitokentest.NewServer()
	if err != nil {
		fmt.Fprintf(stderr, "mitoken demo: starting the emulator: %v\n", err)
		return exitFailure
	}
	defer srv.Close()

	d := &demo{srv: srv, out: stdout}
	fmt.Fprintln(stdout, "mitoken demo: the library against an in-process emulator of the managed-identity endpoints (no Azure)")
	sections := []struct {
		title string
		run   func(context.Context) error
	}{
		{"A token from each source", d.tokens},
		{"1,000 concurrent GetToken calls, one request", d.concurrent},
		{"The Transport calling a protected endpoint", d.transport},
		{"Retries: the App Service endpoint answers 503, 503, then 200", d.retries},
	}
	for i, s := range sections {
		fmt.Fprintf(stdout, "\n%d. %s\n", i+1, s.title)
		if err := s.run(ctx); err != nil {
			fmt.Fprintf(stderr, "mitoken demo: section %d (%s) failed: %v\n", i+1, s.title, err)
			return exitFailure
		}
	}
	fmt.Fprintln(stdout, "\nAll four worked. Next: `mitoken emulate` serves the emulator to your own program; `mitoken token --resource R` gets a real token on Azure.")
	return exitOK
}

type demo struct {
	srv *mitokentest.Server
	out io.Writer
}

func (d *demo) printf(format string, args ...any) { fmt.Fprintf(d.out, "   "+format+"\n", args...) }

// tokens gets a token from each source through its real credential.
func (d *demo) tokens(ctx context.Context) error {
	sources := []struct {
		src mitokentest.Source
		new func(...mitoken.Option) (mitoken.Credential, error)
	}{
		{mitokentest.IMDS, func(o ...mitoken.Option) (mitoken.Credential, error) { return mitoken.NewIMDS(o...) }},
		{mitokentest.AppService, func(o ...mitoken.Option) (mitoken.Credential, error) { return mitoken.NewAppService(o...) }},
		{mitokentest.Arc, func(o ...mitoken.Option) (mitoken.Credential, error) { return mitoken.NewArc(o...) }},
	}
	for _, s := range sources {
		cred, err := s.new(d.srv.Options(s.src)...)
		if err != nil {
			return err
		}
		before := d.srv.Requests(s.src)
		tok, err := cred.GetToken(ctx, demoVault)
		if err != nil {
			return err
		}
		c, err := mitokentest.DecodeClaims(tok.AccessToken)
		if err != nil {
			return err
		}
		requests := plural(d.srv.Requests(s.src)-before, "request")
		if s.src == mitokentest.Arc {
			requests += ": a 401 challenge naming a key file, then the answer"
		}
		d.printf("%-11s token %s (%s)", mitoken.SourceOf(cred), prefix(tok.AccessToken), requests)
		d.printf("%-11s aud=%s exp=%s (in %s)", "", c.Audience,
			time.Unix(c.ExpiresAt, 0).UTC().Format(time.RFC3339), time.Until(tok.ExpiresOn).Round(time.Minute))
		d.printf("%-11s oid=%s appid=%s", "", c.ObjectID, c.AppID)
	}
	return nil
}

// concurrent starts 1,000 GetToken calls at once on a credential with an
// empty cache.
func (d *demo) concurrent(ctx context.Context) error {
	cred, err := mitoken.NewIMDS(append(d.srv.Options(mitokentest.IMDS), mitoken.WithCache(mitoken.NewCache()))...)
	if err != nil {
		return err
	}
	const calls = 1000
	before := d.srv.Requests(mitokentest.IMDS)
	start := make(chan struct{})
	tokens := make([]string, calls)
	errs := make([]error, calls)
	var wg sync.WaitGroup
	for i := range calls {
		wg.Go(func() {
			<-start
			var tok mitoken.Token
			tok, errs[i] = cred.GetToken(ctx, demoVault)
			tokens[i] = tok.AccessToken
		})
	}
	began := time.Now()
	close(start)
	wg.Wait()
	took := time.Since(began)
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	slices.Sort(tokens)
	distinct := len(slices.Compact(tokens))
	requests := d.srv.Requests(mitokentest.IMDS) - before
	d.printf("1,000 goroutines called GetToken at once on a credential with an empty cache")
	d.printf("%s returned in %s; the emulator received %s", plural(distinct, "distinct token"), took.Round(time.Millisecond), plural(requests, "request"))
	if distinct != 1 || requests != 1 {
		return fmt.Errorf("want 1 token from 1 request, got %d tokens from %d requests", distinct, requests)
	}
	return nil
}

// transport calls a local https endpoint that accepts only a token for
// demoAPI, with and without the Transport.
func (d *demo) transport(ctx context.Context) error {
	api := httptest.NewTLSServer(http.HandlerFunc(protected))
	defer api.Close()
	cred, err := mitoken.NewIMDS(d.srv.Options(mitokentest.IMDS)...)
	if err != nil {
		return err
	}
	clients := []struct {
		label  string
		client *http.Client
	}{
		{"with mitoken.Transport", &http.Client{Transport: &mitoken.Transport{Credential: cred, Resource: demoAPI, Base: api.Client().Transport}}},
		{"without it", api.Client()},
	}
	d.printf("a local https API that answers only requests with a Bearer token for %s", demoAPI)
	for i, c := range clients {
		status, body, err := get(ctx, c.client, api.URL+"/hello")
		if err != nil {
			return err
		}
		d.printf("GET %s/hello %-22s -> %s %s", api.URL, c.label, status, body)
		if ok := strings.HasPrefix(status, "200"); ok != (i == 0) {
			return fmt.Errorf("%s: unexpected answer %s", c.label, status)
		}
	}
	return nil
}

// protected is the demo API: it answers "hello, <oid>" to a request with a
// JWT-shaped Bearer token for demoAPI that has not expired, and 401 to
// anything else. (A real API also checks the signature and the issuer.)
func protected(w http.ResponseWriter, r *http.Request) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	c, err := mitokentest.DecodeClaims(tok)
	if !ok || strings.Count(tok, ".") != 2 || err != nil || c.Audience != demoAPI || time.Now().Unix() >= c.ExpiresAt {
		w.Header().Set("WWW-Authenticate", `Bearer resource="`+demoAPI+`"`)
		http.Error(w, "no valid token", http.StatusUnauthorized)
		return
	}
	fmt.Fprintf(w, "hello, %s", c.ObjectID)
}

func get(ctx context.Context, c *http.Client, url string) (status, body string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	return resp.Status, fmt.Sprintf("%q", strings.TrimSpace(string(b))), err
}

// retries scripts two 503 answers from the App Service endpoint and shows
// the credential retrying through them. App Service's policy waits about
// 0.8 s, then 1.6 s.
func (d *demo) retries(ctx context.Context) error {
	rec := &attemptRecorder{}
	cred, err := mitoken.NewAppService(append(d.srv.Options(mitokentest.AppService),
		mitoken.WithCache(mitoken.NewCache()), mitoken.WithLogger(slog.New(rec)))...)
	if err != nil {
		return err
	}
	d.srv.Script(mitokentest.AppService, mitokentest.Response{Status: http.StatusServiceUnavailable}, mitokentest.Response{Status: http.StatusServiceUnavailable})
	before := d.srv.Requests(mitokentest.AppService)
	began := time.Now()
	if _, err := cred.GetToken(ctx, demoVault); err != nil {
		return err
	}
	took := time.Since(began)
	for _, a := range rec.attempts() {
		d.printf("attempt %d at %5.2fs: HTTP %d %s", a.n, a.at.Seconds(), a.status, http.StatusText(a.status))
	}
	requests := d.srv.Requests(mitokentest.AppService) - before
	d.printf("a token after %s and %s, with no retry code in the caller", took.Round(10*time.Millisecond), plural(requests, "request"))
	if requests != 3 {
		return fmt.Errorf("want 3 requests, got %d", requests)
	}
	return nil
}

type attempt struct {
	n, status int
	at        time.Duration
}

// attemptRecorder is a slog.Handler that keeps the attempt number, status
// and elapsed time of the credential's log records.
type attemptRecorder struct {
	mu   sync.Mutex
	seen []attempt
}

func (h *attemptRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *attemptRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *attemptRecorder) WithGroup(string) slog.Handler            { return h }

func (h *attemptRecorder) Handle(_ context.Context, r slog.Record) error {
	a := attempt{}
	r.Attrs(func(at slog.Attr) bool {
		switch at.Key {
		case "attempt":
			a.n = int(at.Value.Int64())
		case "status":
			a.status = int(at.Value.Int64())
		case "elapsed":
			a.at = at.Value.Duration()
		}
		return true
	})
	if a.n == 0 || a.status == 0 {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !slices.ContainsFunc(h.seen, func(b attempt) bool { return b.n == a.n }) {
		h.seen = append(h.seen, a)
	}
	return nil
}

func (h *attemptRecorder) attempts() []attempt {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.seen)
}

// prefix shows the start of a token, never the whole of it.
func prefix(tok string) string {
	const n = 10
	if len(tok) <= 2*n {
		return "…"
	}
	return tok[:n] + "…"
}

// plural writes n and a noun, with an s unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
