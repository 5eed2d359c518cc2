package config

import "os"

// EnvConfig names the environment variable that points every agent command
// at its configuration file when -config is not given.
const EnvConfig = "AUDITEXPORT_CONFIG"

// SystemPath is the configuration file used when neither -config nor
// AUDITEXPORT_CONFIG names one, if it exists.
const SystemPath = "/etc/auditexport/agent.hcl"

// Find returns the configuration file every agent command loads, so that
// the operator commands find the store that serve uses: flagPath (-config)
// when set, else $AUDITEXPORT_CONFIG, else SystemPath if it exists, else ""
// (the built-in defaults). from says where the path came from, for messages.
func Find(flagPath string) (path, from string) {
	return find(flagPath, os.Getenv(EnvConfig), SystemPath)
}

func find(flagPath, envPath, systemPath string) (path, from string) {
	switch {
	case flagPath != "":
		return flagPath, "-config"
	case envPath != "":
		return envPath, EnvConfig
	}
	if _, err := os.Stat(systemPath); err == nil {
		return systemPath, systemPath
	}
	return "", "the built-in defaults"
}
