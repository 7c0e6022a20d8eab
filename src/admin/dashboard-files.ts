// The dashboard's files, served by the admin server. Kept in TypeScript
// modules, not loose files, so that `npm run build` carries them into dist/
// (the image holds dist/ only).

import { DASHBOARD_HTML } from './dashboard-html.ts'
import { DASHBOARD_SCRIPT } from './dashboard-script.ts'
import { DASHBOARD_STYLE } from './dashboard-style.ts'

export const DASHBOARD_FILES: Readonly<Record<string, { type: string; body: string }>> = {
  '/index.html': { type: 'text/html; charset=utf-8', body: DASHBOARD_HTML },
  '/dashboard.js': { type: 'text/javascript; charset=utf-8', body: DASHBOARD_SCRIPT },
  '/dashboard.css': { type: 'text/css; charset=utf-8', body: DASHBOARD_STYLE },
}
