"""The style every HTML page of the project shares (`rnn-apps report`, the export report)."""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; } td, th { padding: 2px 10px; text-align: left; border-bottom: 1px solid #eee; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
.captions { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 16px; }
figure.caption { margin: 0; padding: 8px; border: 1px solid #ddd; border-radius: 6px; }
figure.caption img { max-width: 100%; max-height: 240px; display: block; margin: 0 auto; }
p.generated { font-weight: 600; margin: 6px 0 2px; } p.name { color: #888; font-size: 0.8em; margin: 0; }
ul.human { margin: 4px 0 0; padding-left: 1.2em; color: #555; font-size: 0.9em; }
svg text { font-size: 11px; fill: #444; }
"""
