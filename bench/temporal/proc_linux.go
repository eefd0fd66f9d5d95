package main

import "syscall"

// withParentDeath has Linux kill the server when this process dies without
// stopping it (killed, or its test timed out).
func withParentDeath(a *syscall.SysProcAttr) *syscall.SysProcAttr {
	a.Pdeathsig = syscall.SIGKILL
	return a
}
