package mitokentest

import "github.com/mitoken/mitoken"

// Options returns the mitoken options that point a credential of source at
// this server: for IMDS WithEndpoint; for App Service WithEndpoint and
// WithIdentityHeader(Secret()); for Arc WithEndpoint and
// WithArcTokenDir(ArcTokenDir()). Every credential built with them shares a
// cache private to this server (WithCache), so tokens from one test's
// server never answer another's. Options given after these override them.
func (s *Server) Options(source Source) []mitoken.Option {
	opts := []mitoken.Option{mitoken.WithEndpoint(s.URL(source)), mitoken.WithCache(s.cache)}
	switch source {
	case AppService:
		opts = append(opts, mitoken.WithIdentityHeader(s.secret))
	case Arc:
		opts = append(opts, mitoken.WithArcTokenDir(s.tokenDir))
	}
	return opts
}
