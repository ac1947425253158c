package mitoken

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/mitoken/mitoken/internal/wire"
)

// ErrUnavailable means the managed-identity source is not present here: no
// endpoint is configured or answering, or the endpoint says this host has no
// such identity. Test for it with errors.Is to fall back to another credential.
var ErrUnavailable = errors.New("managed identity is not available")

// ErrClosed is returned by GetToken once the credential has been closed,
// and by a token request that Close cancelled.
var ErrClosed = errors.New("mitoken: the credential is closed")

// ResponseError is returned when a managed-identity endpoint answered with an
// error, or with a 200 whose body cannot be used. It never holds the token or
// a secret header; the endpoint's own text is shortened and stripped of
// control characters.
type ResponseError struct {
	// Source names the source that made the request, as SourceOf does:
	// "imds", "appservice", "arc", "cloudshell", "azureml", "servicefabric"
	// or "workloadidentity".
	Source string
	// StatusCode is the HTTP status of the last answer.
	StatusCode int
	// ErrorCode and Description are the endpoint's "error" and
	// "error_description" fields, when it sent them.
	ErrorCode   string
	Description string
	// Attempts is how many requests were made, retries included.
	Attempts int
	// Message, when set, is mitoken's own explanation of what the answer means.
	Message string

	err error // what Unwrap returns: ErrUnavailable or a decoding error
}

func (e *ResponseError) Error() string {
	var b strings.Builder
	b.WriteString("mitoken: ")
	b.WriteString(e.Source)
	b.WriteString(": ")
	if e.Message != "" {
		b.WriteString(e.Message)
		b.WriteString(" (")
	}
	b.WriteString("HTTP ")
	b.WriteString(strconv.Itoa(e.StatusCode))
	if e.ErrorCode != "" {
		b.WriteString(" ")
		b.WriteString(e.ErrorCode)
	}
	if e.Description != "" {
		b.WriteString(": ")
		b.WriteString(e.Description)
	}
	if e.Message != "" {
		b.WriteString(")")
	}
	if e.err != nil && e.err != ErrUnavailable {
		b.WriteString(": ")
		b.WriteString(e.err.Error())
	}
	fmt.Fprintf(&b, " after %d attempt", e.Attempts)
	if e.Attempts != 1 {
		b.WriteString("s")
	}
	return b.String()
}

// Unwrap returns ErrUnavailable when the answer means the identity does not
// exist here, or the decoding error for an unusable 200, else nil.
func (e *ResponseError) Unwrap() error { return e.err }

// ArgumentError reports an invalid argument or option, found before any
// request is made.
type ArgumentError struct {
	// Name is the argument or option at fault, such as "resource" or "WithClientID".
	Name string
	// Problem says what is wrong with it and what to do.
	Problem string
}

func (e *ArgumentError) Error() string { return "mitoken: invalid " + e.Name + ": " + e.Problem }

// unavailable wraps cause (which may be nil) so that errors.Is(err,
// ErrUnavailable) holds and errors.Is/As still reach the cause.
func unavailable(source, what string, cause error) error {
	if cause == nil {
		return fmt.Errorf("mitoken: %s: %s: %w", source, what, ErrUnavailable)
	}
	return fmt.Errorf("mitoken: %s: %s: %w: %w", source, what, ErrUnavailable, cause)
}

// panicError stands for a panic inside a token request. It does not carry the
// panic value, which could hold anything, secrets included.
type panicError struct{ source string }

func (e *panicError) Error() string {
	return "mitoken: " + e.source + ": internal error: the token request panicked (the value is not shown because it may contain secrets)"
}

// redactSecret removes secret from the endpoint-supplied text that err
// carries (error code, description, decoding reason), so an endpoint that
// echoes a secret header back cannot get it into an error or a log line.
func redactSecret(err error, secret string) error {
	if err == nil || secret == "" {
		return err
	}
	var re *ResponseError
	if errors.As(err, &re) {
		re.ErrorCode = strings.ReplaceAll(re.ErrorCode, secret, redacted)
		re.Description = strings.ReplaceAll(re.Description, secret, redacted)
	}
	var de *wire.DecodeError
	if errors.As(err, &de) {
		de.Reason = strings.ReplaceAll(de.Reason, secret, redacted)
	}
	return err
}
