package mitokentest

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Fault is a way for a scripted response to misbehave.
type Fault int

const (
	// NoFault answers with the Response's Status, Header and Body.
	NoFault Fault = iota
	// Hang answers nothing: the request stays open until the client gives
	// up or the server is closed, and then the connection is closed.
	Hang
	// Malformed answers with a body that is not valid JSON, with Status
	// (200 when zero).
	Malformed
	// Oversized answers with Status (200 when zero) and a well-formed token
	// body padded to more than OversizedBytes.
	Oversized
	// Reset starts a 200 answer and closes the connection in the middle of
	// its body.
	Reset
)

// OversizedBytes is how large the padding of an Oversized body is: 1 MiB.
const OversizedBytes = 1 << 20

// Response is a scripted answer. Scripted answers of a source are used, one
// per request and in order, before the endpoint answers normally again.
type Response struct {
	// Delay is how long to wait before answering. When the client gives up
	// or the server closes first, the connection is closed unanswered.
	Delay time.Duration
	// Fault, when set, decides the answer; see the Fault constants.
	Fault Fault
	// Status is the HTTP status. With no Status, Body or Fault, the
	// endpoint answers normally (after Delay, with Header added).
	Status int
	// Header holds headers to send, such as Retry-After.
	Header http.Header
	// Body is sent as it is. It gets Content-Type application/json unless
	// Header sets one.
	Body string
}

// Script queues responses for the next requests to source's endpoint,
// after any already queued. Every request takes one, whatever it asks (an
// Arc challenge and its answer take one each). A Response with neither
// Status, Body nor Fault lets the endpoint answer normally: use it to add
// latency or to let a request through to reach a later one.
func (s *Server) Script(source Source, responses ...Response) {
	i := source.index()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range responses {
		r.Header = r.Header.Clone()
		s.scripts[i] = append(s.scripts[i], r)
	}
}

// Pending returns how many scripted responses of source are still queued.
func (s *Server) Pending(source Source) int {
	i := source.index()
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.scripts[i])
}

// play answers r with the scripted resp. It returns false when the endpoint
// should answer normally.
func (s *Server) play(w http.ResponseWriter, r *http.Request, resp Response) bool {
	if resp.Delay > 0 {
		t := time.NewTimer(resp.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done(): // the client left or the server is closing
			abort(w)
			return true
		}
	}
	for k, vs := range resp.Header {
		w.Header()[k] = append(w.Header()[k], vs...)
	}
	status := resp.Status
	if status == 0 {
		status = http.StatusOK
	}
	switch resp.Fault {
	case Hang:
		<-r.Context().Done()
		abort(w)
	case Malformed:
		writeBody(w, status, `{"access_token":"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.","expires_in":"3599",`)
	case Oversized:
		writeBody(w, status, `{"padding":"`+strings.Repeat("x", OversizedBytes)+`",`+s.oversizedTail(r))
	case Reset:
		reset(w)
	default:
		if resp.Status == 0 && resp.Body == "" {
			return false
		}
		writeBody(w, status, resp.Body)
	}
	return true
}

// oversizedTail is the rest of an Oversized body: the fields of a real
// token answer, so only its size is wrong.
func (s *Server) oversizedTail(r *http.Request) string {
	id := Identity{}
	if s.system != nil {
		id = *s.system
	}
	t := s.issue(id, r.URL.Query().Get("resource"))
	b := t.imdsBody()
	return `"access_token":"` + b.AccessToken + `","expires_in":"` + b.ExpiresIn + `","expires_on":"` + b.ExpiresOn +
		`","resource":` + strconv.Quote(b.Resource) + `,"token_type":"Bearer"}`
}

func writeBody(w http.ResponseWriter, status int, body string) {
	if body != "" && w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// reset writes the start of a 200 answer on the raw connection and closes
// it, with a TCP reset where the platform allows.
func reset(w http.ResponseWriter) {
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	defer conn.Close()
	const partial = `{"access_token":"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.`
	_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: 1024\r\n\r\n" + partial)
	_ = buf.Flush()
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
}
