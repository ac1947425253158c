package mitokentest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Claims are the claims of a token the emulator issued, named as in the JWT.
type Claims struct {
	// Audience (aud) is the resource the token was requested for.
	Audience string `json:"aud"`
	// Issuer (iss) is https://sts.windows.net/<tenant>/.
	Issuer string `json:"iss"`
	// IssuedAt (iat), NotBefore (nbf) and ExpiresAt (exp) are Unix seconds.
	IssuedAt  int64 `json:"iat"`
	NotBefore int64 `json:"nbf"`
	ExpiresAt int64 `json:"exp"`
	// AppID (appid) is the identity's client ID.
	AppID string `json:"appid"`
	// ObjectID (oid) and Subject (sub) are the identity's object ID.
	ObjectID string `json:"oid"`
	Subject  string `json:"sub"`
	// TenantID (tid) is the tenant.
	TenantID string `json:"tid"`
	// ResourceID (xms_mirid) is the ARM resource ID of a user-assigned identity.
	ResourceID string `json:"xms_mirid,omitempty"`
	// ID (jti) is unique to each token.
	ID string `json:"jti"`
	// Version (ver) is "1.0", the version of managed-identity tokens.
	Version string `json:"ver"`
}

// jwtHeader is the same for every token: a real one names its signing key
// too, but these are signed by nothing.
var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`))

// issued is a token and the times the response reports.
type issued struct {
	token     string
	now, exp  time.Time
	lifetime  time.Duration
	clientID  string
	resource  string
	refreshIn time.Duration
}

// issue makes a token for id and resource. The signature is random bytes.
func (s *Server) issue(id Identity, resource string) issued {
	now := s.cfg.now().Truncate(time.Second)
	exp := now.Add(s.cfg.lifetime)
	c := Claims{
		Audience:   resource,
		Issuer:     "https://sts.windows.net/" + s.tenant + "/",
		IssuedAt:   now.Unix(),
		NotBefore:  now.Unix(),
		ExpiresAt:  exp.Unix(),
		AppID:      id.ClientID,
		ObjectID:   id.ObjectID,
		Subject:    id.ObjectID,
		TenantID:   s.tenant,
		ResourceID: id.ResourceID,
		ID:         randomText(16),
		Version:    "1.0",
	}
	payload, err := json.Marshal(c)
	if err != nil {
		panic(err) // a struct of strings and integers always marshals
	}
	tok := unsignedJWT(payload)
	return issued{token: tok, now: now, exp: exp, lifetime: s.cfg.lifetime, clientID: id.ClientID, resource: resource, refreshIn: s.cfg.refreshIn}
}

// unsignedJWT makes a JWT-shaped token of the claims in payload, whose
// signature is random bytes.
func unsignedJWT(payload []byte) string {
	sig := make([]byte, 256)
	rand.Read(sig)
	return jwtHeader + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// DecodeClaims returns the claims of a JWT-shaped token, such as one the
// emulator issued. It does not check any signature. Its errors never
// contain the token.
func DecodeClaims(token string) (Claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return Claims{}, fmt.Errorf("mitokentest: the token has %d dot-separated parts; a JWT has 3", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return Claims{}, errors.New("mitokentest: the token's claims are not base64url without padding")
	}
	var c Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return Claims{}, errors.New("mitokentest: the token's claims are not a JSON object of the expected claims")
	}
	return c, nil
}

// randomText returns n random bytes as hex.
func randomText(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newGUID returns a random (version 4) GUID.
func newGUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// fill gives id random IDs where it has none, and resourceID when its
// ResourceID is empty.
func fill(id *Identity, resourceID string) {
	if id.ClientID == "" {
		id.ClientID = newGUID()
	}
	if id.ObjectID == "" {
		id.ObjectID = newGUID()
	}
	if id.ResourceID == "" {
		id.ResourceID = resourceID
	}
}
