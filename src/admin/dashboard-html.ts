export const DASHBOARD_HTML = '<!doctype html><title>NanoProxy</title>'
