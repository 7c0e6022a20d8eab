// Passive health of one upstream server: what its real traffic says.
//
// A server whose connections fail (refused, reset before any response,
// connect timeout) EJECT_AFTER times in a row is left out of balancing for
// a while, as Envoy's outlier detection does with consecutive gateway
// failures (envoyproxy.io, "Outlier detection") and nginx with max_fails /
// fail_timeout. The ejection grows while the server keeps failing: the
// base time multiplied by 2 for each ejection since its last success, up
// to MAX_EJECTION_MS. After an ejection the server is on probation: the
// next request goes to it, and one more failure ejects it again at once;
// one success clears everything.
//
// The state lives with the server's connection pool, so it survives config
// reloads that keep the server.

/** Consecutive failures that eject a server. Envoy's consecutive_gateway_failure default is 5; fewer here, as only connection-level failures count. */
export const EJECT_AFTER = 3
/** First ejection; Envoy's base_ejection_time is 30 s, which is long for a pod that restarts in a few. */
export const BASE_EJECTION_MS = 1000
export const MAX_EJECTION_MS = 30_000

export class PassiveHealth {
  /** Connection failures since the last success. */
  failures = 0
  /** Ejections since the last success. */
  ejections = 0
  /** Date.now() until which the server is left out. */
  ejectedUntil = 0

  available(now: number): boolean {
    return now >= this.ejectedUntil
  }

  /** A connection failure; returns the ejection time in ms if it ejected the server, else 0. */
  failed(now: number): number {
    this.failures++
    if (now < this.ejectedUntil) return 0
    if (this.failures < EJECT_AFTER && this.ejections === 0) return 0
    const ms = Math.min(MAX_EJECTION_MS, BASE_EJECTION_MS * 2 ** this.ejections)
    this.ejections++
    this.ejectedUntil = now + ms
    return ms
  }

  /** A response came back: the server is healthy again. */
  succeeded(): void {
    this.failures = 0
    this.ejections = 0
    this.ejectedUntil = 0
  }
}
