// A real browser for UI tests: Debian's chromium, headless, driven over CDP
// by playwright-core (which never downloads a browser of its own).

import { existsSync } from 'node:fs'
import type { Browser } from 'playwright-core'
import { inflateSync } from 'node:zlib'

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

/** Why the browser tests cannot run here, or undefined when they can. */
export function browserMissing(): string | undefined {
  return existsSync(CHROMIUM) ? undefined : `no browser at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`
}

export async function launchBrowser(): Promise<Browser> {
  const { chromium } = await import('playwright-core')
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Chromium refuses to run its sandbox as root (CI runs as root).
    args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
  })
}

/**
 * Distinct byte values in a PNG's decompressed pixel rows: a blank
 * (single-colour) image has only a handful whatever its size (the filter
 * bytes and its one colour), a rendered page with text and a chart has
 * hundreds.
 */
export function pngByteVariety(png: Buffer): number {
  const idat: Buffer[] = []
  let offset = 8
  while (offset < png.length) {
    const length = png.readUInt32BE(offset)
    const type = png.toString('latin1', offset + 4, offset + 8)
    if (type === 'IDAT') idat.push(png.subarray(offset + 8, offset + 8 + length))
    offset += 12 + length
  }
  const raw = inflateSync(Buffer.concat(idat))
  const seen = new Set<number>()
  for (const b of raw) seen.add(b)
  return seen.size
}
