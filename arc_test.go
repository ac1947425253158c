package mitoken

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	arcKey     = "arc-key-7c1e9d0b44"
	arcToken   = "eyJ.arc-token.sig"
	arcKeyName = "3f2a9c.key"
)

// arcFixture is an Arc agent on loopback with a token directory of its own.
// Without an Authorization header it answers 401 with the challenge headers;
// with one, it compares it with the key file it wrote.
type arcFixture struct {
	dir string
	srv *srcServer

	mu        sync.Mutex
	challenge []string // WWW-Authenticate values of the 401
}

func newArcFixture(t *testing.T) *arcFixture {
	t.Helper()
	srcClearEnv(t)
	f := &arcFixture{dir: t.TempDir()}
	f.writeKey(t, arcKeyName, arcKey)
	f.setChallenge("Basic realm=" + filepath.Join(f.dir, arcKeyName))
	f.srv = newSrcServer(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		if auth := r.Header.Get("Authorization"); auth != "" {
			want, err := os.ReadFile(filepath.Join(f.dir, arcKeyName))
			if err == nil && auth == "Basic "+string(want) {
				srcWriteToken(w, arcToken)
				return
			}
			srcWriteError(w, http.StatusUnauthorized, "unauthorized", "wrong key")
			return
		}
		f.mu.Lock()
		for _, v := range f.challenge {
			w.Header().Add("WWW-Authenticate", v)
		}
		f.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
	})
	t.Setenv(envIdentityEP, f.srv.URL+"/metadata/identity/oauth2/token")
	t.Setenv(envIMDSEndpoint, f.srv.URL)
	return f
}

func (f *arcFixture) setChallenge(values ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.challenge = values
}

func (f *arcFixture) writeKey(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(f.dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func (f *arcFixture) credential(t *testing.T, extra ...Option) (*ArcCredential, *srcLog) {
	t.Helper()
	opts, logs := srcOptions(t, append([]Option{WithArcTokenDir(f.dir)}, extra...)...)
	c, err := NewArc(opts...)
	require.NoError(t, err)
	return c, logs
}

func TestArcFollowsTheChallenge(t *testing.T) {
	f := newArcFixture(t)
	t.Setenv(envClientID, "env-client-id") // set for other credentials; Arc ignores it
	c, logs := f.credential(t)
	assert.Equal(t, "arc", c.Source())

	tok, err := c.GetToken(context.Background(), vault+"/.default")
	require.NoError(t, err)
	assert.Equal(t, arcToken, tok.AccessToken)

	reqs := f.srv.requests()
	require.Len(t, reqs, 2)
	for i, r := range reqs {
		assert.Equal(t, http.MethodGet, r.Method, "request %d", i)
		assert.Equal(t, "/metadata/identity/oauth2/token", r.Path, "request %d", i)
		srcRequireQuery(t, map[string]string{"api-version": "2020-06-01", "resource": vault}, r.Query)
		assert.Equal(t, "true", r.Header.Get("Metadata"), "request %d", i)
	}
	assert.Empty(t, reqs[0].Header.Values("Authorization"), "the first request carries no credentials")
	assert.Equal(t, []string{"Basic " + arcKey}, reqs[1].Header.Values("Authorization"))

	assert.Contains(t, logs.String(), "token acquired")
	assert.NotContains(t, logs.String(), arcKey)
	assert.NotContains(t, logs.String(), arcToken)
}

func TestArcReadsChallengesAsRFC7235Does(t *testing.T) {
	cases := []struct {
		name   string
		values func(path string) []string
	}{
		{"bare realm", func(p string) []string { return []string{"Basic realm=" + p} }},
		{"quoted realm", func(p string) []string { return []string{`Basic realm="` + p + `"`} }},
		{"lower-case scheme", func(p string) []string { return []string{"basic realm=" + p} }},
		{"upper-case scheme and parameter name", func(p string) []string { return []string{"BASIC REALM=" + p} }},
		{"other parameters after the realm", func(p string) []string { return []string{`Basic realm="` + p + `", charset="UTF-8"`} }},
		{"other parameters before the realm", func(p string) []string { return []string{`Basic charset=UTF-8, realm=` + p} }},
		{"another challenge first", func(p string) []string { return []string{`Bearer realm="x", error="invalid_token", Basic realm=` + p} }},
		{"another challenge in its own header", func(p string) []string { return []string{`Negotiate`, "Basic realm=" + p} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newArcFixture(t)
			f.setChallenge(tc.values(filepath.Join(f.dir, arcKeyName))...)
			c, _ := f.credential(t)
			tok, err := c.GetToken(context.Background(), vault)
			require.NoError(t, err)
			assert.Equal(t, arcToken, tok.AccessToken)
		})
	}
}

func TestArcAcceptsAKeyOfExactly4096Bytes(t *testing.T) {
	f := newArcFixture(t)
	f.writeKey(t, arcKeyName, strings.Repeat("k", arcMaxKeyBytes))
	c, _ := f.credential(t)
	_, err := c.GetToken(context.Background(), vault)
	require.NoError(t, err)
	assert.Equal(t, "Basic "+strings.Repeat("k", arcMaxKeyBytes), f.srv.requests()[1].Header.Get("Authorization"))
}

// Each refusal: the challenge is not followed, the agent gets one request and
// no key, and the error says what was wrong without showing any key.
func TestArcRefusesABadChallenge(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, f *arcFixture)
		says  string
	}{
		{"no WWW-Authenticate header", func(t *testing.T, f *arcFixture) { f.setChallenge() },
			"no WWW-Authenticate header"},
		{"a challenge that is not Basic", func(t *testing.T, f *arcFixture) {
			f.setChallenge(`Bearer realm="` + filepath.Join(f.dir, arcKeyName) + `"`)
		}, `not a Basic challenge (schemes: "Bearer")`},
		{"a Basic challenge without a realm", func(t *testing.T, f *arcFixture) { f.setChallenge(`Basic charset="UTF-8"`) },
			"no realm"},
		{"an empty realm", func(t *testing.T, f *arcFixture) { f.setChallenge(`Basic realm=""`) },
			"realm is empty"},
		{"a path outside the token directory", func(t *testing.T, f *arcFixture) {
			other := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(other, arcKeyName), []byte(arcKey), 0o600))
			f.setChallenge("Basic realm=" + filepath.Join(other, arcKeyName))
		}, "is not directly inside the Arc token directory"},
		{"a path in a subdirectory of the token directory", func(t *testing.T, f *arcFixture) {
			require.NoError(t, os.Mkdir(filepath.Join(f.dir, "sub"), 0o700))
			f.writeKey(t, filepath.Join("sub", arcKeyName), arcKey)
			f.setChallenge("Basic realm=" + filepath.Join(f.dir, "sub", arcKeyName))
		}, "is not directly inside the Arc token directory"},
		{"a relative path", func(t *testing.T, f *arcFixture) { f.setChallenge("Basic realm=" + arcKeyName) },
			"is not directly inside the Arc token directory"},
		{"a path with ..", func(t *testing.T, f *arcFixture) {
			f.setChallenge("Basic realm=" + f.dir + "/../" + filepath.Base(f.dir) + "/" + arcKeyName)
		}, `contains ".."`},
		{"a symlink inside the directory pointing outside", func(t *testing.T, f *arcFixture) {
			outside := filepath.Join(t.TempDir(), "secret.key")
			require.NoError(t, os.WriteFile(outside, []byte("outside-secret"), 0o600))
			require.NoError(t, os.Symlink(outside, filepath.Join(f.dir, "link.key")))
			f.setChallenge("Basic realm=" + filepath.Join(f.dir, "link.key"))
		}, "is a symbolic link"},
		{"a directory named x.key", func(t *testing.T, f *arcFixture) {
			require.NoError(t, os.Mkdir(filepath.Join(f.dir, "x.key"), 0o700))
			f.setChallenge("Basic realm=" + filepath.Join(f.dir, "x.key"))
		}, "is a directory, not a regular file"},
		{"a file with the wrong extension", func(t *testing.T, f *arcFixture) {
			f.setChallenge("Basic realm=" + f.writeKey(t, "3f2a9c.txt", arcKey))
		}, `"3f2a9c.txt" does not end in .key`},
		{"a file named only .key", func(t *testing.T, f *arcFixture) {
			f.setChallenge("Basic realm=" + f.writeKey(t, ".key", arcKey))
		}, "does not end in .key"},
		{"a 4097-byte file", func(t *testing.T, f *arcFixture) {
			f.setChallenge("Basic realm=" + f.writeKey(t, "big.key", arcKey+strings.Repeat("k", arcMaxKeyBytes+1-len(arcKey))))
		}, "is 4097 bytes; an Arc key file holds at most 4096"},
		{"a file that does not exist", func(t *testing.T, f *arcFixture) {
			f.setChallenge("Basic realm=" + filepath.Join(f.dir, "gone.key"))
		}, "does not exist"},
		{"an empty file", func(t *testing.T, f *arcFixture) {
			f.setChallenge("Basic realm=" + f.writeKey(t, "empty.key", ""))
		}, "is empty"},
		{"a name with a colon (a Windows alternate stream)", func(t *testing.T, f *arcFixture) {
			f.setChallenge(`Basic realm="` + filepath.Join(f.dir, "a:b.key") + `"`)
		}, "not allowed in a key file name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newArcFixture(t)
			tc.setup(t, f)
			c, logs := f.credential(t)
			tok, err := c.GetToken(context.Background(), vault)
			require.Error(t, err)
			assert.Empty(t, tok.AccessToken)
			var ce *challengeError
			require.ErrorAs(t, err, &ce)
			assert.Contains(t, err.Error(), "refusing the agent's challenge")
			assert.Contains(t, err.Error(), tc.says)
			for _, secret := range []string{arcKey, "outside-secret"} {
				assert.NotContains(t, err.Error(), secret)
				assert.NotContains(t, logs.String(), secret)
			}
			reqs := f.srv.requests()
			require.Len(t, reqs, 1, "no second request after a refused challenge")
			assert.Empty(t, reqs[0].Header.Get("Authorization"))
		})
	}
}

func TestArcExplainsAnUnreadableKeyFile(t *testing.T) {
	check := func(t *testing.T, f *arcFixture, c *ArcCredential) {
		t.Helper()
		_, err := c.GetToken(context.Background(), vault)
		require.Error(t, err)
		assert.ErrorIs(t, err, fs.ErrPermission)
		assert.Contains(t, err.Error(), "permission denied reading the key file "+filepath.Join(f.dir, arcKeyName))
		assert.Contains(t, err.Error(), "only root or members of the himds group")
		assert.NotContains(t, err.Error(), arcKey)
		assert.Len(t, f.srv.requests(), 1)
	}
	t.Run("open is denied", func(t *testing.T) {
		// Runs as root too, where file modes do not deny anything.
		f := newArcFixture(t)
		c, _ := f.credential(t)
		c.openKey = func(p string) (*os.File, error) {
			return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrPermission}
		}
		check(t, f, c)
	})
	t.Run("file mode denies reading", func(t *testing.T) {
		if runtime.GOOS == "windows" || os.Geteuid() == 0 {
			t.Skip("file modes do not deny root (or Windows users) reading")
		}
		f := newArcFixture(t)
		require.NoError(t, os.Chmod(filepath.Join(f.dir, arcKeyName), 0))
		c, _ := f.credential(t)
		check(t, f, c)
	})
}

func TestArcRefusesAFirstAnswerOtherThan401(t *testing.T) {
	t.Run("200 with a token", func(t *testing.T) {
		f := newArcFixture(t)
		f.srv.answer = func(w http.ResponseWriter, _ *http.Request, _ int) { srcWriteToken(w, arcToken) }
		c, logs := f.credential(t)
		tok, err := c.GetToken(context.Background(), vault)
		require.Error(t, err)
		assert.Empty(t, tok.AccessToken)
		var re *ResponseError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, http.StatusOK, re.StatusCode)
		assert.Contains(t, err.Error(), "answered the first request with HTTP 200 instead of the expected 401 challenge")
		assert.NotContains(t, err.Error(), arcToken)
		assert.NotContains(t, logs.String(), arcToken)
		assert.Len(t, f.srv.requests(), 1)
	})
	t.Run("500, after retries", func(t *testing.T) {
		f := newArcFixture(t)
		f.srv.answer = func(w http.ResponseWriter, _ *http.Request, _ int) {
			srcWriteError(w, http.StatusInternalServerError, "server_error", "agent broke")
		}
		c, _ := f.credential(t)
		_, err := c.GetToken(context.Background(), vault)
		var re *ResponseError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, http.StatusInternalServerError, re.StatusCode)
		assert.Equal(t, "agent broke", re.Description)
		assert.Contains(t, err.Error(), "HTTP 500 instead of the expected 401 challenge")
		want := 1 + c.send.policy.MaxRetries
		assert.Equal(t, want, re.Attempts)
		assert.Len(t, f.srv.requests(), want)
	})
}

func TestArcReportsAKeyTheAgentRefused(t *testing.T) {
	f := newArcFixture(t)
	f.srv.answer = func(w http.ResponseWriter, r *http.Request, _ int) {
		if r.Header.Get("Authorization") != "" {
			srcWriteError(w, http.StatusUnauthorized, "unauthorized", "key "+arcKey+" is stale")
			return
		}
		w.Header().Set("WWW-Authenticate", "Basic realm="+filepath.Join(f.dir, arcKeyName))
		w.WriteHeader(http.StatusUnauthorized)
	}
	c, logs := f.credential(t)
	_, err := c.GetToken(context.Background(), vault)
	var re *ResponseError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, http.StatusUnauthorized, re.StatusCode)
	assert.Equal(t, 2, re.Attempts)
	assert.Contains(t, err.Error(), "refused the key from its own challenge")
	assert.NotContains(t, err.Error(), arcKey)
	assert.NotContains(t, logs.String(), arcKey)
}

func TestArcReadsAFreshKeyForEveryRequest(t *testing.T) {
	f := newArcFixture(t)
	c, _ := f.credential(t)
	_, err := c.GetToken(context.Background(), vault)
	require.NoError(t, err)
	f.writeKey(t, arcKeyName, "second-key")
	_, err = c.GetToken(context.Background(), "https://storage.azure.com")
	require.NoError(t, err)
	reqs := f.srv.requests()
	require.Len(t, reqs, 4)
	assert.Equal(t, "Basic "+arcKey, reqs[1].Header.Get("Authorization"))
	assert.Equal(t, "Basic second-key", reqs[3].Header.Get("Authorization"))
}

func TestNewArcRefusesUserAssignedIdentities(t *testing.T) {
	for _, opt := range []struct {
		name string
		opt  Option
	}{
		{"WithClientID", WithClientID("cid")},
		{"WithObjectID", WithObjectID("oid")},
		{"WithResourceID", WithResourceID("/subscriptions/s/x")},
	} {
		t.Run(opt.name, func(t *testing.T) {
			f := newArcFixture(t)
			_, err := NewArc(WithArcTokenDir(f.dir), opt.opt)
			var ae *ArgumentError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, opt.name, ae.Name)
			assert.Contains(t, err.Error(), "supports only the machine's system-assigned identity")
		})
	}
}

func TestNewArcEndpoint(t *testing.T) {
	for _, ep := range []string{"http://10.0.0.4:40342/metadata/identity/oauth2/token", "http://example.com/token", "http://169.254.169.254/metadata/identity/oauth2/token"} {
		t.Run("refuses non-loopback "+ep, func(t *testing.T) {
			srcClearEnv(t)
			t.Setenv(envIdentityEP, ep)
			_, err := NewArc(WithArcTokenDir(t.TempDir()))
			var ae *ArgumentError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, "IDENTITY_ENDPOINT", ae.Name)
			assert.Contains(t, err.Error(), "not a loopback address")
		})
	}
	for _, ep := range []string{"http://localhost:40342/t", "http://127.0.0.2:40342/t", "http://[::1]:40342/t"} {
		t.Run("accepts loopback "+ep, func(t *testing.T) {
			srcClearEnv(t)
			_, err := NewArc(WithArcTokenDir(t.TempDir()), WithEndpoint(ep))
			require.NoError(t, err)
		})
	}
	t.Run("unavailable without IDENTITY_ENDPOINT or the agent", func(t *testing.T) {
		srcClearEnv(t)
		_, err := NewArc(WithArcTokenDir(t.TempDir()))
		require.ErrorIs(t, err, ErrUnavailable)
		assert.Contains(t, err.Error(), "IDENTITY_ENDPOINT is not set and the Arc agent is not installed")
	})
	t.Run("the agent's address when the agent is installed", func(t *testing.T) {
		srcClearEnv(t)
		himds := filepath.Join(t.TempDir(), "himds")
		require.NoError(t, os.WriteFile(himds, nil, 0o700))
		srcSetHimds(t, himds)
		c, err := NewArc(WithArcTokenDir(t.TempDir()))
		require.NoError(t, err)
		assert.Equal(t, "http://localhost:40342/metadata/identity/oauth2/token", c.endpoint.String())
	})
	t.Run("the agent's token directory by default", func(t *testing.T) {
		srcClearEnv(t)
		t.Setenv(envIdentityEP, "http://localhost:40342/metadata/identity/oauth2/token")
		c, err := NewArc()
		if runtime.GOOS != "linux" && runtime.GOOS != "windows" {
			require.ErrorIs(t, err, ErrUnavailable)
			return
		}
		require.NoError(t, err)
		if runtime.GOOS == "linux" {
			assert.Equal(t, "/var/opt/azcmagent/tokens", c.tokenDir)
		}
	})
}

func TestParseChallenges(t *testing.T) {
	cases := []struct {
		in   string
		want []challenge
	}{
		{"", nil},
		{"Basic realm=/a/b.key", []challenge{{"Basic", map[string]string{"realm": "/a/b.key"}}}},
		{`Basic realm="a \"q\" \\ b", x=y`, []challenge{{"Basic", map[string]string{"realm": `a "q" \ b`, "x": "y"}}}},
		{`Basic realm="C:\ProgramData\T\k.key"`, []challenge{{"Basic", map[string]string{"realm": `C:\ProgramData\T\k.key`}}}},
		{`Bearer, Basic realm=r`, []challenge{{"Bearer", map[string]string{}}, {"Basic", map[string]string{"realm": "r"}}}},
		{`Basic realm=first, realm=second`, []challenge{{"Basic", map[string]string{"realm": "first"}}}},
		{`Basic realm="unterminated`, []challenge{{"Basic", map[string]string{"realm": "unterminated"}}}},
		{`"junk"`, nil},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			assert.Equal(t, tc.want, parseChallenges(tc.in))
		})
	}
}

func TestArcKeyPathRefusesControlCharacters(t *testing.T) {
	// net/http refuses such a header before it reaches us; check the
	// path check on its own.
	c := &ArcCredential{tokenDir: t.TempDir()}
	_, err := c.keyPath(filepath.Join(c.tokenDir, "a\x01b.key"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"a\x01b.key" holds a character not allowed`)
}

func TestArcKeyErrorsUnwrap(t *testing.T) {
	err := keyFileError("/x.key", &fs.PathError{Op: "open", Path: "/x.key", Err: fs.ErrNotExist})
	assert.True(t, errors.Is(err, fs.ErrNotExist))
	assert.Equal(t, 1, strings.Count(err.Error(), "/x.key"), "the path is named once")
}
