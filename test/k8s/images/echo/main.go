// The test backend: answers every request with a JSON description of what it
// received and which pod answered it, so end-to-end tests can tell the
// replicas apart. /healthz is its readiness probe. On SIGTERM it keeps
// serving for $DRAIN_SECONDS (default 0: endpoints may still point here
// for a moment), then stops accepting and finishes requests in flight.
package main

import (
	"context"
	"encoding/json"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	pod, _ := os.Hostname()
	if v := os.Getenv("POD_NAME"); v != "" {
		pod = v
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"pod":       pod,
			"namespace": os.Getenv("POD_NAMESPACE"),
			"method":    r.Method,
			"host":      r.Host,
			"path":      r.URL.RequestURI(),
			"headers":   r.Header,
			"remote":    r.RemoteAddr,
		})
	})
	srv := &http.Server{Addr: ":" + port, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
		<-sigs
		drain, _ := strconv.Atoi(os.Getenv("DRAIN_SECONDS"))
		time.Sleep(time.Duration(drain) * time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		close(done)
	}()
	log.Printf("echo: pod %s listening on :%s", pod, port)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		log.Fatal(err)
	}
	<-done
}
