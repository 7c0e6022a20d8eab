// Watching files that other programs replace: the config file, certificates.
//
// Editors save by writing a temporary file and renaming it over the old one;
// Kubernetes updates ConfigMap and Secret volumes by swapping a `..data`
// symlink. Watching the file itself loses track after the first such swap
// (the watched inode is gone), so the *directory* is watched, events are
// debounced, the files are read again and their content compared with what
// was last seen: only a real change is reported, however many events fired.
// A slow stat poll backs inotify up (e.g. on file systems that do not
// deliver events, or if the directory itself was replaced).

import { watch, type FSWatcher } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import type { Logger } from '../log.ts'

/** How long a file must have been left alone before its content is trusted. */
const SETTLE_MS = 30

export interface FileWatcherOptions {
  files: readonly string[]
  /** Called with the new contents (undefined for a file that is missing). */
  onChange: (contents: (Buffer | undefined)[]) => void
  log: Logger
  debounceMs?: number
  pollMs?: number
}

export class FileWatcher {
  private readonly opts: Required<FileWatcherOptions>
  private watchers: FSWatcher[] = []
  private timer: NodeJS.Timeout | undefined
  private poll: NodeJS.Timeout | undefined
  private last: (Buffer | undefined)[] = []
  private lastStat = ''
  private checking = false
  private again = false

  constructor(opts: FileWatcherOptions) {
    // 50 ms gathers the events of one save (write, rename, symlink swap)
    // into one check; a writer still busy after that is caught by the
    // settle time and the stat taken around each read.
    this.opts = { debounceMs: 50, pollMs: 2000, ...opts }
  }

  /**
   * Starts watching. `initial` is the content already loaded: no change is
   * reported for it, but anything written between that load and now is
   * (the files are compared once the watches are in place).
   */
  async start(initial?: (Buffer | undefined)[]): Promise<void> {
    this.last = initial ?? (await this.readAll())
    for (const dir of new Set(this.opts.files.map((f) => dirname(f)))) {
      try {
        const w = watch(dir, { persistent: false }, () => this.schedule())
        w.on('error', (err) => this.opts.log.warn({ err, dir }, 'directory watch failed; falling back to polling'))
        this.watchers.push(w)
      } catch (err) {
        this.opts.log.warn({ err, dir }, 'cannot watch directory; falling back to polling')
      }
    }
    this.poll = setInterval(() => void this.pollStat(), this.opts.pollMs)
    this.poll.unref()
    await this.check()
  }

  stop(): void {
    for (const w of this.watchers) w.close()
    this.watchers = []
    clearTimeout(this.timer)
    clearInterval(this.poll)
  }

  private schedule(): void {
    clearTimeout(this.timer)
    this.timer = setTimeout(() => void this.check(), this.opts.debounceMs)
    this.timer.unref()
  }

  private async pollStat(): Promise<void> {
    const { key } = await this.statFiles()
    if (key !== this.lastStat) this.schedule()
  }

  private async check(): Promise<void> {
    // One check at a time; a change arriving meanwhile triggers one more.
    if (this.checking) {
      this.again = true
      return
    }
    this.checking = true
    try {
      const before = await this.statFiles()
      const contents = await this.readAll()
      const after = await this.statFiles()
      // A file written in place (truncate, then write) can be read half
      // written, and half a YAML file is often still valid YAML: with fewer
      // rules, or none. Apply only content that was stable around the read
      // and not modified in the last moments; otherwise look again shortly.
      if (before.key !== after.key || modifiedWithin(after.mtimes, SETTLE_MS)) {
        this.again = true
        return
      }
      this.lastStat = after.key
      const changed = contents.some((c, i) => !sameContent(c, this.last[i]))
      if (changed) {
        this.last = contents
        this.opts.onChange(contents)
      }
    } catch (err) {
      this.opts.log.error({ err }, 'reading watched files failed')
    } finally {
      this.checking = false
      if (this.again) {
        this.again = false
        this.schedule()
      }
    }
  }

  private readAll(): Promise<(Buffer | undefined)[]> {
    return Promise.all(this.opts.files.map((f) => readFile(f).catch(() => undefined)))
  }

  /**
   * The files as they are now (follows symlinks): an identity key from
   * inode, size and mtime, and the mtimes themselves (0 for a missing file).
   */
  private async statFiles(): Promise<{ key: string; mtimes: number[] }> {
    const stats = await Promise.all(this.opts.files.map((f) => stat(f).catch(() => undefined)))
    return {
      key: stats.map((s) => (s ? `${s.ino}:${s.size}:${s.mtimeMs}` : 'missing')).join('|'),
      mtimes: stats.map((s) => s?.mtimeMs ?? 0),
    }
  }
}

/** Whether any of `mtimes` is less than `ms` old. */
function modifiedWithin(mtimes: number[], ms: number): boolean {
  const now = Date.now()
  // mtime has sub-millisecond precision and Date.now() does not, so a file
  // written this very moment can look a fraction of a millisecond in the
  // future. Only a time far ahead (clock skew) is ignored, or it would
  // never settle.
  return mtimes.some((t) => now - t < ms && now - t > -5000)
}

function sameContent(a: Buffer | undefined, b: Buffer | undefined): boolean {
  if (a === undefined || b === undefined) return a === b
  return a.equals(b)
}
