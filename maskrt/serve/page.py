"""The page at `/`: every stream's live annotated view (an <img> on its MJPEG feed,
multipart/x-mixed-replace, which browsers show without plugins) and its figures (state, fps,
frames, drops, restarts, reconnects, per-stage p50/p99), refreshed every second from
`GET /v1/streams` by a few lines of plain JavaScript. Elements carry ids the browser test reads:
`fps-NAME`, `frames-NAME`, `dropped-NAME`, `state-NAME`, `view-NAME`, `p50-NAME-STAGE`, `p99-NAME-STAGE`.
"""

from __future__ import annotations

import html

from .streams import SHOWN_STAGES

STYLE = """
body{font-family:system-ui,sans-serif;margin:16px;background:#111;color:#eee}
h1{font-size:20px;margin:0 0 4px} .sub{color:#aaa;font-size:13px;margin-bottom:12px}
.streams{display:flex;flex-wrap:wrap;gap:16px}
.card{background:#1d1d1d;border:1px solid #333;border-radius:6px;padding:10px}
.card h2{font-size:16px;margin:0 0 6px} .card img{display:block;background:#000}
.body{display:flex;gap:12px;align-items:flex-start}
table{border-collapse:collapse;font-size:12px} td,th{padding:1px 8px;text-align:right}
th{color:#aaa;font-weight:normal} td.k{text-align:left;color:#aaa} .problem{color:#e99;font-size:11px;max-width:480px}
"""

SCRIPT = """
async function refresh(){
  try{
    const r = await fetch('/v1/streams', {cache:'no-store'});
    const streams = await r.json();
    for (const s of streams){
      const set = (id, v) => { const e = document.getElementById(id); if (e) e.textContent = v; };
      set('state-'+s.name, s.state); set('fps-'+s.name, (s.fps ?? 0).toFixed(1));
      set('frames-'+s.name, s.frames ?? 0); set('dropped-'+s.name, s.dropped ?? 0);
      set('restarts-'+s.name, s.restarts ?? 0); set('reconnects-'+s.name, s.reconnects ?? 0);
      for (const [stage, t] of Object.entries(s.stages || {})){
        set('p50-'+s.name+'-'+stage, t.p50_ms.toFixed(1)); set('p99-'+s.name+'-'+stage, t.p99_ms.toFixed(1));
      }
      set('problem-'+s.name, (s.problems || []).slice(-1)[0] || '');
    }
    document.getElementById('updated').textContent = new Date().toLocaleTimeString();
  } catch (e) { document.getElementById('updated').textContent = 'unreachable'; }
}
const reopen = img => { img.src = img.dataset.src + '?t=' + Date.now(); };
function rewire(img){  // a feed that broke (gateway or actor restarting) is opened again
  img.onerror = () => setTimeout(() => reopen(img), 1000);
}
document.querySelectorAll('img.view').forEach(rewire);
// the gateway ends each feed after mjpeg_max_s (10 min): open a fresh one before that
setInterval(() => document.querySelectorAll('img.view').forEach(reopen), 300000);
refresh(); setInterval(refresh, 1000);
"""


def _card(name: str) -> str:
    n = html.escape(name)
    rows = "".join(f"<tr><td class=k>{stage}</td><td id='p50-{n}-{stage}'>-</td><td id='p99-{n}-{stage}'>-</td></tr>"
                   for stage in SHOWN_STAGES)
    figures = "".join(f"<tr><td class=k>{label}</td><td id='{key}-{n}' colspan=2>-</td></tr>" for key, label in (
        ("state", "state"), ("fps", "fps"), ("frames", "frames"), ("dropped", "dropped"),
        ("restarts", "restarts"), ("reconnects", "reconnects")))
    return (f"<div class=card id='card-{n}'><h2>{n}</h2><div class=body>"
            f"<img class=view id='view-{n}' src='/streams/{n}.mjpg' data-src='/streams/{n}.mjpg' alt='{n} live'>"
            f"<table>{figures}<tr><th>stage ms</th><th>p50</th><th>p99</th></tr>{rows}</table></div>"
            f"<div class=problem id='problem-{n}'></div></div>")


def render_page(streams: list[str], model: str, replicas: str) -> str:
    """The whole page as HTML text (streams: their names, in order)."""
    cards = "".join(_card(s) for s in streams) or "<p>No streams. Start with --stream NAME=SOURCE.</p>"
    return (f"<!doctype html><html><head><meta charset=utf-8><title>maskrt serve</title><style>{STYLE}</style>"
            f"</head><body><h1>maskrt serve</h1><div class=sub>model {html.escape(model)} &middot; {replicas}"
            f" &middot; POST images to /v1/segment &middot; <a href='/metrics' style='color:#9cf'>metrics</a>"
            f" &middot; updated <span id=updated>-</span></div><div class=streams>{cards}</div>"
            f"<script>{SCRIPT}</script></body></html>")
