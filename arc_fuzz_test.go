package mitoken

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseChallenge feeds any WWW-Authenticate value through the parser and
// the whole challenge check. The parser must never panic and must return
// only token schemes with lower-case parameter names; the check may accept
// only the one key file that the token directory holds, and its errors never
// hold that key.
func FuzzParseChallenge(f *testing.F) {
	dir := f.TempDir()
	const key = "FUZZ-ARC-KEY-0123456789"
	if err := os.WriteFile(filepath.Join(dir, "good.key"), []byte(key), 0o600); err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		`Basic realm=` + filepath.Join(dir, "good.key"),
		`Basic realm="` + filepath.Join(dir, "good.key") + `"`,
		`Bearer realm="x", Basic realm=` + filepath.Join(dir, "good.key"),
		`Basic realm=/etc/shadow`,
		`Basic realm="C:\\ProgramData\\AzureConnectedMachineAgent\\Tokens\\a.key"`,
		`Basic realm="a\"b.key"`, `Basic`, `Basic realm=`, `, ,`, `Basic realm="unterminated`,
		`Negotiate abc==, Basic realm=x.key, charset="UTF-8"`, "Basic realm=\x00.key",
	} {
		f.Add(seed)
	}
	c := &ArcCredential{tokenDir: dir, openKey: openKeyFile}
	f.Fuzz(func(t *testing.T, h string) {
		for _, ch := range parseChallenges(h) {
			if ch.scheme == "" || strings.IndexFunc(ch.scheme, func(r rune) bool { return r > 0x7e || !isTokenChar(byte(r)) }) >= 0 {
				t.Fatalf("scheme %q is not a token", ch.scheme)
			}
			for name := range ch.params {
				if name != strings.ToLower(name) || name == "" {
					t.Fatalf("parameter name %q", name)
				}
			}
		}
		got, err := c.readChallengeKey([]string{h})
		if err != nil {
			if strings.Contains(err.Error(), key) {
				t.Fatalf("error holds the key: %v", err)
			}
			return
		}
		if got != key {
			t.Fatalf("accepted a challenge that read %q", got)
		}
	})
}

// FuzzArcKeyPath checks the realm check on its own: any path it accepts is
// exactly <tokenDir>/<name>.key, where name holds no separator and no "..".
func FuzzArcKeyPath(f *testing.F) {
	const dir = "/var/opt/azcmagent/tokens"
	for _, seed := range []string{
		dir + "/0b5c3f7e.key", dir + "/../tokens/x.key", dir + "//x.key", dir + "/./x.key", dir + "/sub/x.key",
		dir + "/.key", dir + "/x.key/", dir + "/x.KEY", "x.key", "/etc/x.key", dir + "\\x.key", dir + "/a..key",
		dir + "/x:y.key", "", dir + "/\x00.key",
	} {
		f.Add(seed)
	}
	c := &ArcCredential{tokenDir: dir}
	f.Fuzz(func(t *testing.T, realm string) {
		p, err := c.keyPath(realm)
		if err != nil {
			return
		}
		name := strings.TrimPrefix(p, dir+"/")
		if name == p || !strings.HasSuffix(name, arcKeyExt) || len(name) == len(arcKeyExt) {
			t.Fatalf("accepted %q as %q: not <dir>/<name>.key", realm, p)
		}
		if strings.ContainsAny(name, `/\`) || strings.Contains(name, "..") {
			t.Fatalf("accepted %q as %q: the name holds a separator or ..", realm, p)
		}
		if filepath.Join(dir, name) != p || filepath.Dir(p) != dir {
			t.Fatalf("accepted %q as %q: not directly inside %s", realm, p, dir)
		}
	})
}
