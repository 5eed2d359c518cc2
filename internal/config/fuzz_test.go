package config

import "testing"

// FuzzParse feeds arbitrary files to the config parser: it must answer with
// a config or an error, never panic, and a config it returns must be valid.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`listen = "127.0.0.1:8470"`))
	f.Add([]byte("delivery {\n  workers = 4\n  tick = \"1s\"\n}\n"))
	f.Add([]byte("aws {\n  s3_endpoint = \"http://127.0.0.1:9000\"\n}\ningest {\n  max_event_bytes = 1024\n}\n"))
	f.Add([]byte(`tls { cert_file = "x" }`))
	f.Add([]byte("listen = \n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		cfg, err := Parse(src, "fuzz.hcl")
		if err != nil {
			return
		}
		if verr := cfg.Validate(); verr != nil {
			t.Fatalf("Parse returned a config that does not validate: %v", verr)
		}
	})
}
