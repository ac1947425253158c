// Package wire decodes the JSON bodies that managed-identity endpoints send:
// the token response and the OAuth-style error response. It knows nothing of
// HTTP; the sources hand it the body they read.
package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// MaxBodyBytes is the most a token or error response may hold. Real token
// responses are a few kilobytes; anything past this is refused, not parsed.
const MaxBodyBytes = 256 << 10

// MaxLifetime is the longest token lifetime accepted from an endpoint. Entra
// access tokens live at most about a day; an expiry further out than this is
// taken as a unit mistake (milliseconds for seconds, say), not trusted.
const MaxLifetime = 7 * 24 * time.Hour

// ErrBodyTooLarge is returned by ReadBody when the body exceeds MaxBodyBytes.
var ErrBodyTooLarge = fmt.Errorf("response body is larger than %d KiB", MaxBodyBytes>>10)

// ReadBody reads at most MaxBodyBytes from r.
func ReadBody(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxBodyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading response body: %w", err)
	}
	if len(b) > MaxBodyBytes {
		return nil, ErrBodyTooLarge
	}
	return b, nil
}

// Token is a decoded, validated token response.
type Token struct {
	AccessToken string
	TokenType   string
	ExpiresOn   time.Time
	// RefreshIn is the endpoint's refresh_in hint, or 0 when it sent none
	// (or sent one that makes no sense for this token's lifetime).
	RefreshIn time.Duration
	Resource  string
	ClientID  string
}

// DecodeError says why a 200 response could not be used. It never holds the
// access token: only field names and, for expiry fields, their values.
type DecodeError struct {
	Reason string
}

func (e *DecodeError) Error() string { return "unusable token response: " + e.Reason }

// flex is a JSON value that endpoints send as a string or as a number.
type flex struct {
	set bool
	s   string
}

func (f *flex) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &f.s); err != nil {
			return err
		}
		f.set = true
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return errors.New("expires_on, expires_in and refresh_in must each be a string or a number")
	}
	f.s, f.set = n.String(), true
	return nil
}

type tokenJSON struct {
	AccessToken *string `json:"access_token"`
	TokenType   string  `json:"token_type"`
	ExpiresOn   flex    `json:"expires_on"`
	ExpiresIn   flex    `json:"expires_in"`
	RefreshIn   flex    `json:"refresh_in"`
	Resource    string  `json:"resource"`
	ClientID    string  `json:"client_id"`
	Error       *string `json:"error"`
}

// DecodeToken parses a 200 body. now is the time the response arrived; it is
// used for expires_in and to refuse tokens that are already expired. An error
// never repeats the access token, even when another field echoes it.
func DecodeToken(body []byte, now time.Time) (Token, error) {
	t, secret, err := decodeToken(body, now)
	if err != nil {
		var de *DecodeError
		if secret != "" && errors.As(err, &de) {
			de.Reason = strings.ReplaceAll(de.Reason, secret, "<redacted>")
		}
		return Token{}, err
	}
	return t, nil
}

func decodeToken(body []byte, now time.Time) (Token, string, error) {
	var raw tokenJSON
	if err := json.Unmarshal(body, &raw); err != nil {
		return Token{}, "", &DecodeError{Reason: "malformed JSON: " + describeJSONError(err)}
	}
	secret := ""
	if raw.AccessToken != nil {
		secret = *raw.AccessToken
	}
	if raw.Error != nil {
		return Token{}, secret, &DecodeError{Reason: fmt.Sprintf("the body carries an error field %q", clip(*raw.Error))}
	}
	if raw.AccessToken == nil {
		return Token{}, secret, &DecodeError{Reason: "access_token is missing"}
	}
	if *raw.AccessToken == "" {
		return Token{}, secret, &DecodeError{Reason: "access_token is empty"}
	}
	typ := raw.TokenType
	switch {
	case typ == "":
		typ = "Bearer"
	case strings.EqualFold(typ, "bearer"):
		typ = "Bearer"
	default:
		return Token{}, secret, &DecodeError{Reason: fmt.Sprintf("token_type is %q; only Bearer tokens are supported", clip(typ))}
	}
	exp, err := expiry(raw, now)
	if err != nil {
		return Token{}, secret, err
	}
	t := Token{
		AccessToken: *raw.AccessToken,
		TokenType:   typ,
		ExpiresOn:   exp,
		Resource:    raw.Resource,
		ClientID:    raw.ClientID,
	}
	if raw.RefreshIn.set {
		if secs, err := strconv.ParseInt(strings.TrimSpace(raw.RefreshIn.s), 10, 64); err == nil &&
			secs > 0 && time.Duration(secs)*time.Second < exp.Sub(now) {
			t.RefreshIn = time.Duration(secs) * time.Second
		}
	}
	return t, secret, nil
}

// expiry picks the token's expiry: expires_on when it parses and is plausible,
// else expires_in, else an error naming what was wrong. An expires_on that
// parses but lies in the past is an error, not a reason to try expires_in.
func expiry(raw tokenJSON, now time.Time) (time.Time, error) {
	var onErr error
	if raw.ExpiresOn.set {
		t, err := ParseExpiresOn(raw.ExpiresOn.s)
		if err == nil {
			err = plausible("expires_on", raw.ExpiresOn.s, t, now)
			if err == nil {
				return t, nil
			}
			if !t.After(now) {
				// A well-formed expiry in the past is the endpoint's word:
				// the token is dead, whatever expires_in says.
				return time.Time{}, err
			}
		}
		onErr = err
	}
	if raw.ExpiresIn.set {
		secs, err := strconv.ParseInt(strings.TrimSpace(raw.ExpiresIn.s), 10, 64)
		if err != nil {
			return time.Time{}, &DecodeError{Reason: fmt.Sprintf("expires_in %q is not a whole number of seconds", clip(raw.ExpiresIn.s))}
		}
		if secs > int64(MaxLifetime/time.Second) {
			secs = int64(MaxLifetime/time.Second) + 1 // let plausible() report it
		}
		t := now.Add(time.Duration(secs) * time.Second).Round(0)
		if err := plausible("expires_in", raw.ExpiresIn.s, t, now); err != nil {
			return time.Time{}, err
		}
		return t, nil
	}
	if onErr != nil {
		return time.Time{}, onErr
	}
	return time.Time{}, &DecodeError{Reason: "neither expires_on nor expires_in is present"}
}

func plausible(field, value string, t, now time.Time) error {
	switch {
	case !t.After(now):
		return &DecodeError{Reason: fmt.Sprintf("%s %q is not in the future (token already expired)", field, clip(value))}
	case t.Sub(now) > MaxLifetime:
		return &DecodeError{Reason: fmt.Sprintf("%s %q is more than %v away; refusing an implausible expiry", field, clip(value), MaxLifetime)}
	}
	return nil
}

// appServiceDates are the forms of expires_on that the 2017-09-01 App Service
// protocol sent: month/day/year, a 24-hour time, and the UTC offset, as in
// "09/14/2017 00:00:00 +00:00". Month, day and hour may have one digit, and
// a 12-hour time with AM/PM (as .NET formats dates) is read too.
var appServiceDates = []string{
	"1/2/2006 15:04:05 -07:00",
	"1/2/2006 3:04:05 PM -07:00",
}

// ParseExpiresOn reads expires_on as epoch seconds (integer or decimal, as a
// string or a JSON number's text) or as the 2017 App Service date form
// "09/14/2017 00:00:00 +00:00", whose offset is honoured.
func ParseExpiresOn(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, &DecodeError{Reason: "expires_on is empty"}
	}
	if s[0] >= '0' && s[0] <= '9' && !strings.Contains(s, "/") {
		if secs, err := strconv.ParseInt(s, 10, 64); err == nil {
			if secs > 1<<40 { // far outside any real date; avoid overflow later
				return time.Time{}, &DecodeError{Reason: fmt.Sprintf("expires_on %q is out of range", clip(s))}
			}
			return time.Unix(secs, 0), nil
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil && f < 1<<40 {
			sec := int64(f)
			return time.Unix(sec, int64((f-float64(sec))*1e9)), nil
		}
	}
	for _, layout := range appServiceDates {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, &DecodeError{Reason: fmt.Sprintf("expires_on %q is neither epoch seconds nor a date like \"09/14/2017 00:00:00 +00:00\"", clip(s))}
}

// ErrorBody is an endpoint's OAuth-style error answer. Either field may be empty.
type ErrorBody struct {
	Code        string
	Description string
}

// DecodeError reads {"error": ..., "error_description": ...} from a non-200
// body. App Service and older endpoints sometimes nest it as
// {"error": {"code": ..., "message": ...}}; that form is read too. A body that
// is not JSON gives an empty ErrorBody: the status code still speaks.
func DecodeErrorBody(body []byte) ErrorBody {
	var flat struct {
		Error       json.RawMessage `json:"error"`
		Description string          `json:"error_description"`
		Message     string          `json:"message"`
	}
	if json.Unmarshal(body, &flat) != nil {
		return ErrorBody{}
	}
	eb := ErrorBody{Description: flat.Description}
	if eb.Description == "" {
		eb.Description = flat.Message
	}
	if len(flat.Error) > 0 {
		var code string
		if json.Unmarshal(flat.Error, &code) == nil {
			eb.Code = code
		} else {
			var nested struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			}
			if json.Unmarshal(flat.Error, &nested) == nil {
				eb.Code = nested.Code
				if eb.Description == "" {
					eb.Description = nested.Message
				}
			}
		}
	}
	eb.Code, eb.Description = clip(eb.Code), clip(eb.Description)
	return eb
}

// clip keeps endpoint-supplied text short and printable before it goes into
// an error message.
func clip(s string) string {
	const max = 200
	var b strings.Builder
	for i, r := range s {
		if i >= max {
			b.WriteString("…")
			break
		}
		if r < 0x20 || r == 0x7f {
			r = ' '
		}
		b.WriteRune(r)
	}
	return b.String()
}

func describeJSONError(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q has the wrong type (%s)", te.Field, te.Value)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of input"
	}
	// Other json errors (such as from flex) name the field only through
	// their text, which holds no values of the body.
	return err.Error()
}
