package gitopstests

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// newArgoCDState returns a gopher-lua state with the libraries Argo CD opens for health
// scripts configured in argocd-cm (resource.customizations.useOpenLibs unset): package,
// base and table. Argo CD also opens a restricted os library (date/time only), which
// health.lua does not use. The string library is not opened.
func newArgoCDState(t *testing.T) *lua.LState {
	t.Helper()
	state := lua.NewState(lua.Options{SkipOpenLibs: true})
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := state.CallByParam(lua.P{Fn: state.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			t.Fatalf("opening Lua library %q: %v", lib.name, err)
		}
	}
	return state
}

// toLua converts unstructured content to Lua values as Argo CD does (numbers, strings,
// booleans, arrays as sequences, maps as tables, null as nil).
func toLua(state *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case int64:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case []any:
		table := state.CreateTable(len(v), 0)
		for _, item := range v {
			table.Append(toLua(state, item))
		}
		return table
	case map[string]any:
		table := state.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetString(key, toLua(state, item))
		}
		return table
	default:
		return lua.LNil
	}
}

// runHealthScript runs script with obj bound, as Argo CD does, and returns the status and
// message of the table it returns.
func runHealthScript(t *testing.T, script string, obj map[string]any) (string, string, error) {
	t.Helper()
	state := newArgoCDState(t)
	defer state.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	state.SetContext(ctx)
	state.SetGlobal("obj", toLua(state, obj))
	if err := state.DoString(script); err != nil {
		return "", "", err
	}
	result, ok := state.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("health script returned %s, want a table", state.Get(-1).Type())
	}
	for _, field := range []string{"status", "message"} {
		if value := result.RawGetString(field); value.Type() != lua.LTString {
			t.Fatalf("health script returned %s = %s (%s), want a string", field, value, value.Type())
		}
	}
	return result.RawGetString("status").String(), result.RawGetString("message").String(), nil
}

// readHealthScript returns the ConnectInstance health.lua.
func readHealthScript(t *testing.T) string {
	t.Helper()
	return connectInstanceCheck.readScript(t)
}

func TestArgoCDHealthScriptMatchesEveryCaseInHealthTestYAML(t *testing.T) {
	for _, check := range healthChecks {
		t.Run(check.Kind, func(t *testing.T) {
			script := check.readScript(t)
			for _, tc := range check.loadTests(t) {
				t.Run(strings.TrimSuffix(filepath.Base(tc.InputPath), ".yaml"), func(t *testing.T) {
					obj := check.loadObject(t, tc.InputPath)
					status, message, err := runHealthScript(t, script, obj.Object)
					if err != nil {
						t.Fatalf("health.lua failed without the string library: %v", err)
					}
					if status != tc.HealthStatus.Status {
						t.Errorf("status = %q, want %q (message %q)", status, tc.HealthStatus.Status, message)
					}
					if message != tc.HealthStatus.Message {
						t.Errorf("message = %q, want %q", message, tc.HealthStatus.Message)
					}
				})
			}
		})
	}
}

// The harness must really lack the string library, or the test above proves nothing.
func TestArgoCDLuaEnvironmentHasNoStringLibrary(t *testing.T) {
	state := newArgoCDState(t)
	defer state.Close()
	if value := state.GetGlobal("string"); value != lua.LNil {
		t.Fatalf("the global `string` is %s, want nil", value.Type())
	}
	for _, script := range []string{
		`local s = "Ready"; return { status = "Healthy", message = s:lower() }`,
		`return { status = "Healthy", message = string.format("%d", 1) }`,
	} {
		if _, _, err := runHealthScript(t, script, map[string]any{}); err == nil {
			t.Errorf("script %q ran, but it needs the string library", script)
		}
	}
}

var (
	luaLineComment   = regexp.MustCompile(`--[^\n]*`)
	luaQuotedLiteral = regexp.MustCompile(`"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'`)
	stringLibraryUse = regexp.MustCompile(`\bstring\b`)
	methodCall       = regexp.MustCompile(`[\w\)\]"']\s*:\s*[A-Za-z_]\w*\s*[\("'{]`)
)

// Paths the fixtures do not reach would only fail in Argo CD, so the source itself must not
// name the string library or call methods (s:find, s:sub, ...).
func TestArgoCDHealthScriptDoesNotUseTheStringLibrary(t *testing.T) {
	for _, check := range healthChecks {
		code := luaQuotedLiteral.ReplaceAllString(luaLineComment.ReplaceAllString(check.readScript(t), ""), `""`)
		if strings.Contains(code, "[[") {
			t.Fatalf("%s health.lua uses long brackets; keep it to line comments and quoted literals so this check stays sound", check.Kind)
		}
		if match := stringLibraryUse.FindString(code); match != "" {
			t.Errorf("%s health.lua refers to the string library (%q); argocd-cm scripts run without it", check.Kind, match)
		}
		if match := methodCall.FindString(code); match != "" {
			t.Errorf("%s health.lua calls a method (%q); on text values that needs the string library", check.Kind, match)
		}
	}
}
