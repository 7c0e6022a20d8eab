// The programs of the test cluster's images (standard library only, built
// statically by ../build.sh --node): the pod sandbox's pause process and a
// small HTTP backend. See ../README.md.
module nanoproxy.local/test/k8s/images

go 1.26.0
