//go:build unix

package main

import (
	"os/exec"
	"syscall"
)

// sysProcAttr puts the server in a process group of its own, so that
// signalGroup reaches whatever it starts too.
func sysProcAttr() *syscall.SysProcAttr {
	return withParentDeath(&syscall.SysProcAttr{Setpgid: true})
}

// signalGroup sends sig to cmd's process group.
func signalGroup(cmd *exec.Cmd, sig syscall.Signal) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, sig)
	}
}
