package gitopstests

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite generated files (argocd/argocd-cm-snippet.yaml) instead of comparing")

// argoCDHealthKey is the argocd-cm key of a kind's health check.
func argoCDHealthKey(kind string) string {
	return "resource.customizations.health.connect.operators.dev_" + kind
}

const argoCDSnippetHeader = `# Installs the ConnectInstance and ConnectAccount health checks into Argo CD. Merge it into
# the argocd-cm ConfigMap (the data keys below are the only additions), for example:
#
#   kubectl -n argocd patch configmap argocd-cm --type merge --patch-file argocd/argocd-cm-snippet.yaml
#
# or put the keys under ` + "`configs.cm`" + ` of the argo-cd Helm chart. Each script is
# resource_customizations/connect.operators.dev/<Kind>/health.lua verbatim.
# Generated: edit health.lua, then run ` + "`go test ./... -run TestArgoCDConfigMapSnippet -update`" + `
# in gitops-tests/. The scripts need no useOpenLibs.
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels:
    app.kubernetes.io/name: argocd-cm
    app.kubernetes.io/part-of: argocd
data:
`

// renderArgoCDSnippet embeds each health.lua as a YAML block scalar under its argocd-cm key.
func renderArgoCDSnippet(scripts map[string]string) string {
	var b strings.Builder
	b.WriteString(argoCDSnippetHeader)
	for _, check := range healthChecks {
		b.WriteString("  " + argoCDHealthKey(check.Kind) + ": |\n")
		for _, line := range strings.SplitAfter(scripts[check.Kind], "\n") {
			if strings.TrimSpace(line) == "" {
				if line != "" {
					b.WriteString("\n")
				}
				continue
			}
			b.WriteString("    " + line)
		}
	}
	return b.String()
}

func TestArgoCDConfigMapSnippetEmbedsHealthLuaVerbatim(t *testing.T) {
	scripts := map[string]string{}
	for _, check := range healthChecks {
		scripts[check.Kind] = check.readScript(t)
	}
	path := filepath.Join("..", "argocd", "argocd-cm-snippet.yaml")
	want := renderArgoCDSnippet(scripts)
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	if string(got) != want {
		t.Fatalf("argocd/argocd-cm-snippet.yaml is out of date with health.lua; regenerate it with `go test ./... -run TestArgoCDConfigMapSnippet -update`")
	}
	// And what Argo CD reads back from the ConfigMap is each script itself, and nothing else.
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(got, &cm); err != nil {
		t.Fatalf("parsing the snippet: %v", err)
	}
	if len(cm.Data) != len(healthChecks) {
		t.Fatalf("the snippet has %d data keys, want %d (one per health check)", len(cm.Data), len(healthChecks))
	}
	for _, check := range healthChecks {
		if cm.Data[argoCDHealthKey(check.Kind)] != scripts[check.Kind] {
			t.Fatalf("the snippet's %s does not decode to %s/health.lua", argoCDHealthKey(check.Kind), check.Kind)
		}
	}
}
