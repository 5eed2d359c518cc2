//go:build unix

package testenv

import (
	"os/exec"
	"syscall"
)

// setProcessGroup starts cmd in its own process group so that the server
// and any children it forks can be killed together.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// killProcessGroup kills the process group started by cmd.
func killProcessGroup(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	// The group id equals the leader's pid; a negative pid names the group.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
