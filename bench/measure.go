package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/mitoken/mitoken"
	"github.com/mitoken/mitoken/mitokentest"
)

// Callers is how many goroutines call GetToken at once in Cold and Storm.
const Callers = 1000

var resourceSeq atomic.Int64

// UniqueResource returns a resource no client has a token for yet.
// azidentity's cache (MSAL's) is shared by every credential in the process,
// so a measure that needs an empty cache needs a resource of its own.
func UniqueResource() string {
	return fmt.Sprintf("https://bench-%d.example.com", resourceSeq.Add(1))
}

// Crowd is what a burst of concurrent callers saw.
type Crowd struct {
	Requests  int             // requests the emulator received during the burst
	Wall      time.Duration   // from the release of the callers until the last returned
	Latencies []time.Duration // each caller's, sorted
	Errors    int
	FirstErr  error
}

// burst releases n callers of get at once and waits for them all.
func burst(ctx context.Context, get Getter, resource string, n int) Crowd {
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		lat   = make([]time.Duration, n)
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			t0 := time.Now()
			_, errs[i] = get(ctx, resource)
			lat[i] = time.Since(t0)
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	c := Crowd{Wall: time.Since(t0), Latencies: lat}
	slices.Sort(c.Latencies)
	for _, err := range errs {
		if err != nil {
			if c.Errors == 0 {
				c.FirstErr = err
			}
			c.Errors++
		}
	}
	return c
}

// Cold releases callers concurrent callers of a credential with no token
// for the resource, and counts the upstream requests they caused.
func Cold(ctx context.Context, r *Rig, client string, callers int) Crowd {
	before := r.Server.Requests(r.Source)
	c := burst(ctx, r.Getter(client), UniqueResource(), callers)
	c.Requests = r.Server.Requests(r.Source) - before
	return c
}

// StormResult is what a refresh storm showed.
type StormResult struct {
	Crowd
	// Waited is how many callers took at least three quarters of the
	// refresh request's scripted delay: those that waited for the network.
	Waited int
}

// Storm gets one token, waits (on the wall clock) until the client's own
// refresh time for it has passed, scripts the next upstream answer to take
// delay, and releases callers concurrent callers. It counts the upstream
// requests the burst caused (waiting for in-flight ones to arrive) and the
// callers that waited for the network. The rig's emulator should issue
// tokens with refresh_in of a second or two (mitokentest.WithRefreshIn) and
// a lifetime well over five minutes, so that both clients would still hand
// out the cached token.
func Storm(ctx context.Context, r *Rig, client string, callers int, delay time.Duration) (StormResult, error) {
	get := r.Getter(client)
	resource := UniqueResource()
	tok, err := get(ctx, resource)
	if err != nil {
		return StormResult{}, err
	}
	if tok.RefreshOn.IsZero() {
		return StormResult{}, errNoRefresh
	}
	wait := time.Until(tok.RefreshOn) + 20*time.Millisecond
	if wait > 10*time.Second {
		return StormResult{}, fmt.Errorf("bench: %s would refresh in %v; start the emulator WithRefreshIn of a second or two", client, wait)
	}
	if wait > 0 {
		time.Sleep(wait) // the refresh point is on the wall clock of both clients
	}
	before := r.Server.Requests(r.Source)
	r.Server.Script(r.Source, mitokentest.Response{Delay: delay})
	c := burst(ctx, get, resource, callers)
	// A background refresh may reach the emulator just after the last
	// caller returned: wait for the scripted answer to be taken, then for
	// a little more.
	for deadline := time.Now().Add(delay + 2*time.Second); r.Server.Pending(r.Source) > 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(delay + 50*time.Millisecond)
	c.Requests = r.Server.Requests(r.Source) - before
	res := StormResult{Crowd: c}
	for _, l := range c.Latencies {
		if l >= delay*3/4 {
			res.Waited++
		}
	}
	return res, nil
}

// Refusal is how the first call failed with nothing listening.
type Refusal struct {
	Elapsed time.Duration
	Err     error
}

// NoListener builds client's credential for a host where nothing listens
// at addr (a closed loopback port, see ClosedLoopbackAddr) and returns a
// function that times its first GetToken, bounded by ctx. mitoken is built
// with New and AZURE_POD_IDENTITY_AUTHORITY_HOST pointing at addr, so it
// auto-detects IMDS as on a host that is not on Azure; azidentity's
// ManagedIdentityCredential has its fixed IMDS address redirected to addr
// by a Guard. The environment is changed only while the credential is
// built, so the returned function may run alongside other measures.
func NoListener(client, addr string) (first func(ctx context.Context) (Refusal, error), err error) {
	restore := setEnv(map[string]string{"AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://" + addr})
	defer restore()
	var (
		get   Getter
		guard *Guard
	)
	switch client {
	case "mitoken":
		cred, err := mitoken.New(mitoken.WithCache(mitoken.NewCache()))
		if err != nil {
			return nil, err
		}
		if src := mitoken.SourceOf(cred); src != "imds" {
			return nil, fmt.Errorf("bench: mitoken.New chose %q, not imds", src)
		}
		get = MitokenGetter(cred)
	default:
		if guard, err = NewGuard(addr); err != nil {
			return nil, err
		}
		cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
			ClientOptions: azcore.ClientOptions{Transport: guard},
		})
		if err != nil {
			return nil, err
		}
		get = AzureGetter(cred)
	}
	return func(ctx context.Context) (Refusal, error) {
		t0 := time.Now()
		_, err := get(ctx, UniqueResource())
		elapsed := time.Since(t0)
		if guard != nil {
			guard.Close()
			if gerr := guard.Err(); gerr != nil {
				return Refusal{}, gerr
			}
		}
		if err == nil {
			return Refusal{}, fmt.Errorf("bench: %s got a token with nothing listening at %s", client, addr)
		}
		return Refusal{Elapsed: elapsed, Err: err}, nil
	}, nil
}
