export const DASHBOARD_SCRIPT = ''
