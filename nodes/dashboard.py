"""``GET /dashboard``: one self-contained HTML page (inline CSS, vanilla JS, SVG charts) over ``/v1/stats``.

No build step and nothing fetched from elsewhere: the page asks for an API key (kept in the browser's
localStorage, or given in the URL fragment as ``#key=…``), calls ``/v1/stats`` and ``/v1/steps`` with
it and draws cost against the all-full baseline, the tier mix, the per-tier table with escalation
reasons and audit advice, and the pipeline steps: where ``tier: auto`` starts each one, why, and the
audit agreement behind it.
"""

from __future__ import annotations

from importlib.resources import files

DASHBOARD_HTML = files("nodes").joinpath("dashboard.html").read_text(encoding="utf-8")
