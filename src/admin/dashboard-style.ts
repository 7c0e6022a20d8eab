export const DASHBOARD_STYLE = ''
