// Package gitopstests checks the GitOps integrations of connect-operator against the
// libraries the GitOps tools themselves run:
//
//   - the Argo CD health check (argocd/resource_customizations/.../health.lua) under
//     github.com/yuin/gopher-lua, with the libraries Argo CD opens for argocd-cm scripts
//     (no string library), over every case in its health_test.yaml;
//   - kstatus (sigs.k8s.io/cli-utils/pkg/kstatus/status), which Flux, `kubectl wait` and
//     cli-utils appliers use, over the same fixtures;
//   - the Flux healthCheckExprs (CEL) documented in docs/gitops.md, under
//     github.com/google/cel-go with the options Flux's evaluator uses.
//
// Run with `go test ./...` from this directory.
package gitopstests
