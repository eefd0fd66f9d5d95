//go:build unix && !linux

package main

import "syscall"

func withParentDeath(a *syscall.SysProcAttr) *syscall.SysProcAttr { return a }
