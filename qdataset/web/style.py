"""The pages' few lines of CSS (inside each Div: Bokeh puts Divs in a shadow DOM)."""

PAGE_STYLE = """<style>
h1, h2 { font-family: sans-serif; margin: 0.2em 0; }
p, td, th, pre { font-family: sans-serif; font-size: 14px; }
pre { font-family: monospace; background: #f6f6f6; padding: 0.6em; }
.qd-table { border-collapse: collapse; }
.qd-table td, .qd-table th { padding: 2px 10px; border-bottom: 1px solid #ddd; text-align: left; }
.qd-table .qd-num { text-align: right; }
.qd-state-running { color: #1565c0; } .qd-state-completed { color: #2e7d32; }
.qd-state-interrupted { color: #e65100; }
.qd-state-failed { color: #c62828; font-weight: bold; }
.qd-error { color: #c62828; } .qd-notice { color: #8a6d00; font-style: italic; }
</style>"""
