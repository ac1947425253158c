package mitoken

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/mitoken/mitoken/internal/retry"
	"github.com/mitoken/mitoken/internal/wire"
)

// Azure Arc-enabled servers: the agent (himds) answers a first request with a
// 401 whose challenge names a key file that only privileged local users can
// read; the second request proves that by sending the file's contents.
const (
	arcSource          = "arc"
	arcAPIVersion      = "2020-06-01"
	arcDefaultEndpoint = "http://localhost:40342/metadata/identity/oauth2/token"
	arcKeyExt          = ".key"
	arcMaxKeyBytes     = 4096
	arcPermissionHint  = "only root or members of the himds group can read the Arc agent's token files; run as root or add this user to the himds group"
)

// arcHimdsPath is where the Arc agent's binary lives; its presence means the
// agent is installed even when IDENTITY_ENDPOINT is not in this process's
// environment. A variable so that tests can point it at a file of their own.
var arcHimdsPath = defaultHimdsPath()

func defaultHimdsPath() string {
	switch runtime.GOOS {
	case "linux":
		return "/opt/azcmagent/bin/himds"
	case "windows":
		if pd := os.Getenv("ProgramData"); pd != "" {
			return filepath.Join(pd, "AzureConnectedMachineAgent", "himds.exe")
		}
	}
	return ""
}

// arcInstalled reports whether the Arc agent's binary is present.
func arcInstalled() bool {
	if arcHimdsPath == "" {
		return false
	}
	_, err := os.Stat(arcHimdsPath)
	return err == nil
}

// defaultArcTokenDir is the directory where the agent writes key files.
func defaultArcTokenDir() (string, error) {
	switch runtime.GOOS {
	case "linux":
		return "/var/opt/azcmagent/tokens", nil
	case "windows":
		pd := os.Getenv("ProgramData")
		if pd == "" {
			return "", unavailable(arcSource, "ProgramData is not set, so the agent's token directory is unknown", nil)
		}
		return filepath.Join(pd, "AzureConnectedMachineAgent", "Tokens"), nil
	}
	return "", unavailable(arcSource, "Azure Arc is supported on Linux and Windows only, not "+runtime.GOOS, nil)
}

// ArcCredential gets tokens from the Azure Arc agent of an Arc-enabled
// server. Arc serves only the machine's system-assigned identity. It is safe
// for concurrent use.
type ArcCredential struct {
	base
	endpoint *url.URL
	tokenDir string
	send     *sender
	// openKey opens a key file that passed every check; a test hook.
	openKey func(path string) (*os.File, error)
}

// NewArc returns an Azure Arc credential. The endpoint is WithEndpoint, else
// IDENTITY_ENDPOINT, else the agent's standard local address when the agent
// is installed; it must be a loopback address, since the agent's key is sent
// to it. Key files are read only from the agent's token directory
// (/var/opt/azcmagent/tokens on Linux,
// %ProgramData%\AzureConnectedMachineAgent\Tokens on Windows) or from
// WithArcTokenDir. When no endpoint is found, or the platform has no Arc
// agent, the error satisfies errors.Is(err, ErrUnavailable).
//
// WithClientID, WithObjectID and WithResourceID are refused with an
// *ArgumentError: Arc has no user-assigned identities. AZURE_CLIENT_ID in the
// environment is ignored, so a process that sets it for other credentials
// still gets the machine's identity here.
func NewArc(opts ...Option) (*ArcCredential, error) { return newArc(opts) }

func newArc(opts []Option) (*ArcCredential, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if err := systemOnly(cfg, arcSource, "Azure Arc", "the machine's "); err != nil {
		return nil, err
	}
	origin, raw := endpointFrom(cfg, envIdentityEP)
	if strings.TrimSpace(raw) == "" {
		if !arcInstalled() {
			return nil, unavailable(arcSource, envIdentityEP+" is not set and the Arc agent is not installed", nil)
		}
		origin, raw = "the Arc agent's default address", arcDefaultEndpoint
	}
	u, err := parseEndpoint(origin, raw)
	if err != nil {
		return nil, err
	}
	if !isLoopback(u.Hostname()) {
		return nil, &ArgumentError{Name: origin, Problem: fmt.Sprintf(
			"host %q is not a loopback address (127.0.0.0/8, ::1 or localhost); the Arc agent's key is only ever sent to the local agent", u.Hostname())}
	}
	dir := cfg.arcDir
	if dir == "" {
		if dir, err = defaultArcTokenDir(); err != nil {
			return nil, err
		}
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, &ArgumentError{Name: "WithArcTokenDir", Problem: err.Error()}
	}
	c := &ArcCredential{endpoint: u, tokenDir: dir, openKey: openKeyFile}
	c.send = newSender(arcSource, retry.Arc, cfg)
	c.base = newBase(arcSource, u.String(), cfg, c.fetch)
	return c, nil
}

// Source returns "arc".
func (c *ArcCredential) Source() string { return arcSource }

// fetch runs the challenge flow: GET without credentials, expect 401 with
// WWW-Authenticate: Basic realm=<key file>, read the file after checking it,
// then GET again with Authorization: Basic <key>. The key lives only in this
// call. Both requests retry per retry.Arc; the first never retries its
// expected 401, and a retried second request resends the same key, which
// the agent accepts until the file expires.
func (c *ArcCredential) fetch(ctx context.Context, resource string) (wire.Token, error) {
	q := url.Values{"api-version": {arcAPIVersion}, "resource": {resource}}
	req, err := newGet(ctx, c.endpoint, q, "Metadata", "true")
	if err != nil {
		return wire.Token{}, err
	}
	resp, attempts, err := c.send.do(ctx, req, false)
	if err != nil {
		return wire.Token{}, err
	}
	if resp.StatusCode != http.StatusUnauthorized {
		re := c.send.readError(resp, attempts)
		re.Message = fmt.Sprintf("the Arc agent answered the first request with HTTP %d instead of the expected 401 challenge", resp.StatusCode)
		return wire.Token{}, re
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, wire.MaxBodyBytes))
	resp.Body.Close()
	key, err := c.readChallengeKey(resp.Header.Values("WWW-Authenticate"))
	if err != nil {
		return wire.Token{}, err
	}

	req, err = newGet(ctx, c.endpoint, q, "Metadata", "true", "Authorization", "Basic "+key)
	if err != nil {
		return wire.Token{}, err
	}
	resp, n, err := c.send.do(ctx, req, false)
	if err != nil {
		return wire.Token{}, err
	}
	tok, _, err := c.send.readToken(resp, attempts+n)
	err = redactSecret(err, key)
	var re *ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusUnauthorized {
		re.Message = "the Arc agent refused the key from its own challenge"
	}
	return tok, err
}

// challengeError reports an Arc challenge that mitoken refused to follow.
// Its text names what was wrong; it never holds the key.
type challengeError struct {
	problem string
	err     error
}

func (e *challengeError) Error() string {
	msg := "mitoken: arc: refusing the agent's challenge: " + e.problem
	if e.err != nil {
		msg += ": " + e.err.Error()
	}
	return msg
}

func (e *challengeError) Unwrap() error { return e.err }

func refuse(format string, args ...any) error {
	return &challengeError{problem: fmt.Sprintf(format, args...)}
}

// readChallengeKey finds the Basic challenge's realm, checks that it names a
// key file directly inside the token directory, and reads that file.
func (c *ArcCredential) readChallengeKey(headers []string) (string, error) {
	if len(headers) == 0 {
		return "", refuse("the 401 carries no WWW-Authenticate header")
	}
	var schemes []string
	realm, found := "", false
	for _, h := range headers {
		for _, ch := range parseChallenges(h) {
			schemes = append(schemes, ch.scheme)
			if strings.EqualFold(ch.scheme, "Basic") && !found {
				realm, found = ch.params["realm"]
				if !found {
					return "", refuse("the Basic challenge has no realm naming the key file")
				}
			}
		}
	}
	if !found {
		return "", refuse("WWW-Authenticate is not a Basic challenge (schemes: %s)", quoteClip(strings.Join(schemes, ", ")))
	}
	path, err := c.keyPath(realm)
	if err != nil {
		return "", err
	}
	key, err := c.readKey(path)
	if err != nil {
		return "", err
	}
	return key, nil
}

// keyPath checks the realm and rebuilds the key file's path from the token
// directory and the realm's file name, never trusting the realm's directory.
func (c *ArcCredential) keyPath(realm string) (string, error) {
	if realm == "" {
		return "", refuse("the challenge's realm is empty")
	}
	for _, part := range strings.FieldsFunc(realm, func(r rune) bool { return r == '/' || r == '\\' }) {
		if part == ".." {
			return "", refuse("the key file path %s contains \"..\"", quoteClip(realm))
		}
	}
	dir, name := filepath.Split(realm)
	if !sameDir(filepath.Clean(dir), c.tokenDir) {
		return "", refuse("the key file %s is not directly inside the Arc token directory %s", quoteClip(realm), c.tokenDir)
	}
	if !strings.HasSuffix(name, arcKeyExt) || name == arcKeyExt {
		return "", refuse("the key file name %s does not end in %s", quoteClip(name), arcKeyExt)
	}
	if strings.Contains(name, "..") {
		return "", refuse("the key file name %s contains \"..\"", quoteClip(name))
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r == '/' || r == '\\' || r == ':' {
			return "", refuse("the key file name %s holds a character not allowed in a key file name", quoteClip(name))
		}
	}
	return filepath.Join(c.tokenDir, name), nil
}

func sameDir(a, b string) bool {
	if runtime.GOOS == "windows" {
		return strings.EqualFold(a, b)
	}
	return a == b
}

// readKey reads a key file after checking, without following links, that it
// is a regular file of at most 4096 bytes, and reads it through the handle it
// checked so the file cannot be swapped in between.
func (c *ArcCredential) readKey(path string) (string, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return "", keyFileError(path, err)
	}
	if err := checkKeyInfo(path, fi); err != nil {
		return "", err
	}
	f, err := c.openKey(path)
	if err != nil {
		return "", keyFileError(path, err)
	}
	defer f.Close()
	opened, err := f.Stat()
	if err != nil {
		return "", keyFileError(path, err)
	}
	if !os.SameFile(fi, opened) {
		return "", refuse("the key file %s was replaced while it was being opened", path)
	}
	if err := checkKeyInfo(path, opened); err != nil {
		return "", err
	}
	b, err := io.ReadAll(io.LimitReader(f, arcMaxKeyBytes+1))
	if err != nil {
		return "", keyFileError(path, err)
	}
	if len(b) > arcMaxKeyBytes {
		return "", refuse("the key file %s holds more than %d bytes", path, arcMaxKeyBytes)
	}
	key := strings.TrimSpace(string(b))
	if key == "" {
		return "", refuse("the key file %s is empty", path)
	}
	if strings.IndexFunc(key, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return "", refuse("the key file %s holds control characters, so it cannot be a key", path)
	}
	return key, nil
}

func checkKeyInfo(path string, fi fs.FileInfo) error {
	switch m := fi.Mode(); {
	case m&fs.ModeSymlink != 0:
		return refuse("the key file %s is a symbolic link; only a regular file is read", path)
	case m.IsDir():
		return refuse("the key file %s is a directory, not a regular file", path)
	case !m.IsRegular():
		return refuse("the key file %s is not a regular file (mode %s)", path, m)
	case fi.Size() > arcMaxKeyBytes:
		return refuse("the key file %s is %d bytes; an Arc key file holds at most %d", path, fi.Size(), arcMaxKeyBytes)
	}
	return nil
}

func keyFileError(path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the path is already in the message
	}
	switch {
	case errors.Is(err, fs.ErrPermission):
		return &challengeError{problem: "permission denied reading the key file " + path + ": " + arcPermissionHint, err: err}
	case errors.Is(err, fs.ErrNotExist):
		return &challengeError{problem: "the key file " + path + " does not exist", err: err}
	}
	return &challengeError{problem: "could not read the key file " + path, err: err}
}

// quoteClip quotes endpoint-supplied text for an error message, shortened.
func quoteClip(s string) string {
	const max = 200
	if len(s) > max {
		s = s[:max] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// challenge is one challenge of a WWW-Authenticate header (RFC 7235).
type challenge struct {
	scheme string
	params map[string]string // lower-case names
}

// parseChallenges reads a WWW-Authenticate value as RFC 7235 does: a list of
// challenges, each a case-insensitive scheme followed by comma-separated
// name=value parameters whose values are tokens or quoted strings. It is
// lenient where the Arc agent needs it: a bare value runs to the next comma
// (the agent sends paths unquoted), and in a quoted value only \" and \\ are
// escapes, so a quoted Windows path keeps its backslashes.
func parseChallenges(h string) []challenge {
	var out []challenge
	p := &headerParser{s: h}
	for {
		p.skip(" \t,")
		scheme := p.token()
		if scheme == "" {
			return out
		}
		ch := challenge{scheme: scheme, params: map[string]string{}}
		for p.param(ch.params) {
		}
		out = append(out, ch)
	}
}

type headerParser struct {
	s string
	i int
}

// param reads one name=value into params. When what follows is not a
// parameter (the next challenge's scheme, a token68, the end) it leaves the
// position where it was and returns false.
func (p *headerParser) param(params map[string]string) bool {
	mark := p.i
	p.skip(" \t,")
	name := p.token()
	p.skip(" \t")
	if name == "" || p.peek() != '=' {
		p.i = mark
		return false
	}
	p.i++
	p.skip(" \t")
	var v string
	if p.peek() == '"' {
		v = p.quoted()
	} else {
		start := p.i
		for p.i < len(p.s) && p.s[p.i] != ',' {
			p.i++
		}
		v = strings.TrimRight(p.s[start:p.i], " \t")
	}
	name = strings.ToLower(name)
	if _, dup := params[name]; !dup {
		params[name] = v
	}
	return true
}

func (p *headerParser) quoted() string {
	var b strings.Builder
	for p.i++; p.i < len(p.s); p.i++ {
		switch c := p.s[p.i]; {
		case c == '"':
			p.i++
			return b.String()
		case c == '\\' && p.i+1 < len(p.s) && (p.s[p.i+1] == '"' || p.s[p.i+1] == '\\'):
			p.i++
			b.WriteByte(p.s[p.i])
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func (p *headerParser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *headerParser) skip(set string) {
	for p.i < len(p.s) && strings.IndexByte(set, p.s[p.i]) >= 0 {
		p.i++
	}
}

func (p *headerParser) token() string {
	start := p.i
	for p.i < len(p.s) && isTokenChar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

// isTokenChar reports whether b may appear in an RFC 7230 token.
func isTokenChar(b byte) bool {
	return b > ' ' && b < 0x7f && !strings.ContainsRune("\"(),/:;<=>?@[\\]{}", rune(b))
}
