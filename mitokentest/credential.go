package mitokentest

import "github.com/mitoken/mitoken"

// Options returns the mitoken options that point a credential of source at
// this server:
//
//   - IMDS, Cloud Shell: WithEndpoint.
//   - App Service, Azure ML: WithEndpoint and WithIdentityHeader(Secret()).
//   - Arc: WithEndpoint and WithArcTokenDir(ArcTokenDir()).
//   - Service Fabric: WithEndpoint, WithIdentityHeader(Secret()) and
//     WithServerThumbprint(Thumbprint()).
//   - Workload identity: WithEndpoint (the authority host
//     http://127.0.0.1:PORT/), WithTenantID(Tenant()),
//     WithClientID(WorkloadClientID()) and
//     WithFederatedTokenFile(FederatedTokenFile()).
//
// Every credential built with them shares a cache private to this server
// (WithCache), so tokens from one test's server never answer another's.
// Options given after these override them.
func (s *Server) Options(source Source) []mitoken.Option {
	if source == WorkloadIdentity {
		return []mitoken.Option{mitoken.WithEndpoint(s.host(source) + "/"), mitoken.WithCache(s.cache),
			mitoken.WithTenantID(s.tenant), mitoken.WithClientID(s.WorkloadClientID()),
			mitoken.WithFederatedTokenFile(s.FederatedTokenFile())}
	}
	opts := []mitoken.Option{mitoken.WithEndpoint(s.URL(source)), mitoken.WithCache(s.cache)}
	switch source {
	case AppService, AzureML:
		opts = append(opts, mitoken.WithIdentityHeader(s.secret))
	case ServiceFabric:
		opts = append(opts, mitoken.WithIdentityHeader(s.secret), mitoken.WithServerThumbprint(s.sfThumb))
	case Arc:
		opts = append(opts, mitoken.WithArcTokenDir(s.tokenDir))
	}
	return opts
}
