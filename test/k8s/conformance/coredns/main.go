// A minimal CoreDNS for the Gateway API conformance suite's base manifests
// (registry.k8s.io/coredns/coredns:v1.12.2, the "coredns" Deployment of
// gateway-conformance-infra). Nothing can be pulled on our machines, so it is
// built from CoreDNS's own module with only the plugins that Deployment's
// Corefile names (forward, log, errors, whoami). See ../../README.md.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/whoami"
)

func init() {
	// The plugins' order in the chain: that of CoreDNS's plugin.cfg.
	dnsserver.Directives = []string{"errors", "log", "forward", "whoami"}
}

func main() {
	coremain.Run()
}
