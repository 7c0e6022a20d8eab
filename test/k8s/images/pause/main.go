// The pod sandbox's process (containerd's sandbox_image): it holds the pod's
// namespaces and does nothing else. Kubernetes' own pause is a C program
// (build/pause/linux/pause.c); this is the same behaviour in Go, so the
// image is built from source here without a C toolchain: exit 0 on SIGINT or
// SIGTERM, reap children when it is PID 1 of a shared PID namespace.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s == syscall.SIGCHLD {
			for {
				pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
			continue
		}
		os.Exit(0)
	}
}
