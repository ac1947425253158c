package wire

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseExpiresOnAcceptsEpochAndAppServiceDates(t *testing.T) {
	cases := []struct {
		name, in string
		want     time.Time
	}{
		{"epoch seconds", "1586984735", time.Unix(1586984735, 0)},
		{"epoch seconds with spaces", " 1586984735 ", time.Unix(1586984735, 0)},
		{"epoch seconds with a fraction", "1586984735.5", time.Unix(1586984735, 500_000_000)},
		{"App Service 2017 date in UTC", "09/14/2017 00:00:00 +00:00", time.Date(2017, 9, 14, 0, 0, 0, 0, time.UTC)},
		{"App Service date east of UTC", "09/14/2017 00:00:00 +05:30", time.Date(2017, 9, 13, 18, 30, 0, 0, time.UTC)},
		{"App Service date west of UTC", "09/14/2017 10:15:30 -08:00", time.Date(2017, 9, 14, 18, 15, 30, 0, time.UTC)},
		{"App Service date with one-digit month and day", "9/4/2017 07:00:00 +01:00", time.Date(2017, 9, 4, 6, 0, 0, 0, time.UTC)},
		{"App Service date in 12-hour form, PM", "9/14/2017 1:02:03 PM +00:00", time.Date(2017, 9, 14, 13, 2, 3, 0, time.UTC)},
		{"App Service date in 12-hour form, midnight", "9/14/2017 12:00:00 AM -08:00", time.Date(2017, 9, 14, 8, 0, 0, 0, time.UTC)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseExpiresOn(tc.in)
			require.NoError(t, err)
			assert.True(t, tc.want.Equal(got), "got %v, want %v", got.UTC(), tc.want.UTC())
		})
	}
}

func TestParseExpiresOnRefusesOtherForms(t *testing.T) {
	for _, in := range []string{
		"",
		"   ",
		"soon",
		"-1",
		"+1586984735",
		"2017-09-14T00:00:00Z",
		"09/14/2017 00:00:00",        // no offset: which zone?
		"13/14/2017 00:00:00 +00:00", // no month 13
		"09/14/2017 25:00:00 +00:00",
		"99999999999999999999",
		"1e400",
		"1099511627777", // past the sane range
	} {
		t.Run(strconv.Quote(in), func(t *testing.T) {
			_, err := ParseExpiresOn(in)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "expires_on")
		})
	}
}

func TestDecodeTokenExpiry(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	in := func(d time.Duration) time.Time { return now.Add(d) }
	epoch := strconv.FormatInt(now.Add(time.Hour).Unix(), 10)
	date := now.Add(2 * time.Hour).In(time.FixedZone("", -(8*3600 + 30*60))).Format("01/02/2006 15:04:05 -07:00")
	cases := []struct {
		name, fields string
		want         time.Time
	}{
		{"expires_on as a string of epoch seconds", `"expires_on":"` + epoch + `"`, in(time.Hour)},
		{"expires_on as a number", `"expires_on":` + epoch, in(time.Hour)},
		{"expires_on as an App Service date with an offset", `"expires_on":"` + date + `"`, in(2 * time.Hour)},
		{"expires_in as a string when expires_on is absent", `"expires_in":"3599"`, in(3599 * time.Second)},
		{"expires_in as a number when expires_on is absent", `"expires_in":3599`, in(3599 * time.Second)},
		{"expires_in when expires_on is null", `"expires_on":null,"expires_in":"60"`, in(time.Minute)},
		{"expires_in when expires_on is malformed", `"expires_on":"tomorrow","expires_in":"600"`, in(10 * time.Minute)},
		{"expires_on wins over expires_in", `"expires_on":"` + epoch + `","expires_in":"60"`, in(time.Hour)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := DecodeToken([]byte(`{"access_token":"secret-token",`+tc.fields+`}`), now)
			require.NoError(t, err)
			assert.True(t, tc.want.Equal(tok.ExpiresOn), "got %v, want %v", tok.ExpiresOn, tc.want)
			assert.Equal(t, "secret-token", tok.AccessToken)
		})
	}
}

func TestDecodeTokenRefusesUnusableExpiry(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	cases := []struct{ name, fields, says string }{
		{"no expiry at all", ``, "neither expires_on nor expires_in"},
		{"malformed expires_on and nothing else", `"expires_on":"tomorrow"`, `expires_on "tomorrow"`},
		{"expired expires_on", `"expires_on":"1000"`, "already expired"},
		{"expired expires_on is final even with expires_in", `"expires_on":"1000","expires_in":600`, "already expired"},
		{"malformed expires_in", `"expires_in":"an hour"`, "expires_in"},
		{"negative expires_in", `"expires_in":"-5"`, "not in the future"},
		{"expiry years away", `"expires_in":"999999999"`, "implausible"},
		{"expiry neither string nor number", `"expires_on":true`, "string or a number"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"access_token":"secret-token"`
			if tc.fields != "" {
				body += "," + tc.fields
			}
			_, err := DecodeToken([]byte(body+`}`), now)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.says)
			assert.NotContains(t, err.Error(), "secret-token")
		})
	}
}

// FuzzParseExpiresOn checks that the parser never panics, that what it
// accepts is a real instant that survives a round trip, and that its errors
// stay short and printable whatever the endpoint sent. Its seeds run under
// plain go test.
func FuzzParseExpiresOn(f *testing.F) {
	for _, s := range []string{
		"1586984735", "1586984735.25", " 42 ", "0", "1099511627776", "1e9", "1e400", "-1", "NaN",
		"09/14/2017 00:00:00 +00:00", "09/14/2017 00:00:00 +05:30", "12/31/2017 23:59:59 -08:00",
		"9/4/2017 1:02:03 PM +00:00", "09/14/2017 00:00:00 PM +00:00", "02/30/2017 00:00:00 +00:00",
		"", "/", "0/0/0 0:0:0 +0:0", strings.Repeat("9", 400), "1/1/1 \x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseExpiresOn(s)
		if err != nil {
			msg := err.Error()
			if len(msg) > 800 { // clip keeps 200 bytes of input, each at most 3 bytes out
				t.Fatalf("error is %d bytes long", len(msg))
			}
			for _, r := range msg {
				if r < 0x20 || r == 0x7f {
					t.Fatalf("error holds control character %q: %q", r, msg)
				}
			}
			return
		}
		if got.IsZero() {
			t.Fatalf("ParseExpiresOn(%q) returned the zero time without an error", s)
		}
		trimmed := strings.TrimSpace(s)
		if secs, perr := strconv.ParseInt(trimmed, 10, 64); perr == nil {
			if got.Unix() != secs || got.Nanosecond() != 0 {
				t.Fatalf("ParseExpiresOn(%q) = %d, want %d", s, got.Unix(), secs)
			}
			return
		}
		if strings.Contains(trimmed, "/") {
			// A date: printing it back in its own zone and reading it
			// again must give the same instant.
			again, err := ParseExpiresOn(got.Format("01/02/2006 15:04:05 -07:00"))
			if err != nil || !again.Equal(got) {
				t.Fatalf("date %q parsed to %v, which does not round-trip: %v, %v", s, got, again, err)
			}
			return
		}
		if got.Unix() < 0 || got.Unix() > 1<<40 {
			t.Fatalf("ParseExpiresOn(%q) = %v, out of range", s, got)
		}
	})
}
