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

const argoCDHealthKey = "resource.customizations.health.connect.operators.dev_ConnectInstance"

const argoCDSnippetHeader = `# Installs the ConnectInstance health check into Argo CD. Merge it into the argocd-cm ConfigMap
# (the data key below is the only addition), for example:
#
#   kubectl -n argocd patch configmap argocd-cm --type merge --patch-file argocd/argocd-cm-snippet.yaml
#
# or put the key under ` + "`configs.cm`" + ` of the argo-cd Helm chart. The script is
# resource_customizations/connect.operators.dev/ConnectInstance/health.lua verbatim.
# Generated: edit health.lua, then run ` + "`go test ./... -run TestArgoCDConfigMapSnippet -update`" + `
# in gitops-tests/. The script needs no useOpenLibs.
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels:
    app.kubernetes.io/name: argocd-cm
    app.kubernetes.io/part-of: argocd
data:
  ` + argoCDHealthKey + `: |
`

// renderArgoCDSnippet embeds health.lua as a YAML block scalar under the argocd-cm key.
func renderArgoCDSnippet(script string) string {
	var b strings.Builder
	b.WriteString(argoCDSnippetHeader)
	for _, line := range strings.SplitAfter(script, "\n") {
		if strings.TrimSpace(line) == "" {
			if line != "" {
				b.WriteString("\n")
			}
			continue
		}
		b.WriteString("    " + line)
	}
	return b.String()
}

func TestArgoCDConfigMapSnippetEmbedsHealthLuaVerbatim(t *testing.T) {
	script := readHealthScript(t)
	path := filepath.Join("..", "argocd", "argocd-cm-snippet.yaml")
	want := renderArgoCDSnippet(script)
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
	// And what Argo CD reads back from the ConfigMap is the script itself.
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(got, &cm); err != nil {
		t.Fatalf("parsing the snippet: %v", err)
	}
	if cm.Data[argoCDHealthKey] != script {
		t.Fatalf("the snippet's %s does not decode to health.lua", argoCDHealthKey)
	}
}
