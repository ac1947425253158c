package mitokentest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strings"
	"time"
)

// The Service Fabric token endpoint: GET /metadata/identity/oauth2/token
// (api-version 2019-07-01-preview) over https, with a self-signed
// certificate that clients pin by its SHA-1 thumbprint.

const serviceFabricVersion = "2019-07-01-preview"

// serviceFabricBody is the Service Fabric 200 body: expires_on is a number.
type serviceFabricBody struct {
	TokenType   string `json:"token_type"`
	AccessToken string `json:"access_token"`
	ExpiresOn   int64  `json:"expires_on"`
	RefreshIn   int64  `json:"refresh_in,omitempty"`
	Resource    string `json:"resource"`
}

// serviceFabricError is Service Fabric's error body, with the error nested.
type serviceFabricError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeServiceFabricError(w http.ResponseWriter, status int, code, message string) {
	var e serviceFabricError
	e.Error.Code, e.Error.Message = code, message
	writeJSON(w, status, e)
}

func (s *Server) serveServiceFabric(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path != serviceFabricPath:
		writeServiceFabricError(w, http.StatusNotFound, "NotFound", "No such endpoint; the token endpoint is "+serviceFabricPath)
		return
	case r.Method != http.MethodGet:
		w.Header().Set("Allow", http.MethodGet)
		writeServiceFabricError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The token endpoint accepts only GET")
		return
	}
	// Never echo what was sent: it is a secret.
	got := r.Header.Get("Secret")
	if got == "" {
		writeServiceFabricError(w, http.StatusUnauthorized, "SecretHeaderNotFound", "Secret is not found in the request headers; send the value of IDENTITY_HEADER")
		return
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(s.secret)) != 1 {
		writeServiceFabricError(w, http.StatusUnauthorized, "InvalidSecret", "The Secret header does not match IDENTITY_HEADER")
		return
	}
	q := r.URL.Query()
	if code, desc := queryProblem(q, func(v string) bool { return v == serviceFabricVersion }, serviceFabricVersion); code != "" {
		writeServiceFabricError(w, http.StatusBadRequest, code, desc)
		return
	}
	if name := userAssignedParam(q); name != "" {
		writeServiceFabricError(w, http.StatusBadRequest, "invalid_request", "User-assigned identities are chosen in the application manifest, not per request ("+name+" was given)")
		return
	}
	if s.system == nil {
		writeServiceFabricError(w, http.StatusBadRequest, "invalid_request", "Identity not found")
		return
	}
	t := s.issue(*s.system, q.Get("resource"))
	writeJSON(w, http.StatusOK, serviceFabricBody{
		TokenType: "Bearer", AccessToken: t.token, ExpiresOn: t.exp.Unix(),
		RefreshIn: int64(t.refreshIn / time.Second), Resource: t.resource,
	})
}

// selfSignedCertificate makes the Service Fabric endpoint's certificate: a
// fresh P-256 key, valid for 127.0.0.1, ::1 and localhost for a year from
// now. It returns the certificate and its SHA-1 thumbprint in upper-case hex.
func selfSignedCertificate(now time.Time) (tls.Certificate, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("mitokentest: making the Service Fabric key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("mitokentest: making the Service Fabric certificate: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "mitokentest Service Fabric token service"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("mitokentest: making the Service Fabric certificate: %w", err)
	}
	sum := sha1.Sum(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, strings.ToUpper(hex.EncodeToString(sum[:])), nil
}
