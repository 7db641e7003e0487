"""``report.html``: one self-contained page an inspector opens on a laptop, offline: the header,
a strip of the pipe with the observations along it, the table with each observation's photo
(embedded), and the distance the counter gave over time. Drawings are inline SVG, photos are
embedded JPEGs (``data:`` URIs), there is no script: nothing is fetched from anywhere."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from hybrid.survey.distance import READ, Distances
from hybrid.survey.header import SurveyHeader
from hybrid.survey.observations import Observation

STRIP_W, STRIP_H, PLOT_W, PLOT_H, MARGIN = 960, 150, 960, 220, 40
LABEL_GAP_PX = 36  # strip labels closer than this become one ("BAJ +3")
REVIEW_COLOUR, SURE_COLOUR, NODE_COLOUR, PIPE_COLOUR = "#b45309", "#1d4ed8", "#374151", "#d1d5db"
STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#111827;max-width:1100px}
h1{font-size:1.5em;margin-bottom:4px} h2{font-size:1.15em;margin-top:28px}
.draft{background:#fef3c7;border:1px solid #f59e0b;padding:8px 12px;border-radius:4px}
table{border-collapse:collapse;font-size:.92em} td,th{border:1px solid #d1d5db;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f4f6} tr.review td{background:#fffbeb} img.photo{width:240px;height:auto;display:block}
.muted{color:#6b7280;font-size:.9em}
"""


@dataclass
class SurveyPage:
    """What the page shows: the header, the observations (with their photos' JPEG bytes by file
    name), each video's distances, and lines about how it was made."""

    header: SurveyHeader
    observations: Sequence[Observation]
    distances: dict[str, Distances]
    photos: dict[str, bytes] = field(default_factory=dict)
    facts: list[tuple[str, str]] = field(default_factory=list)
    title: str = "Draft inspection survey"


def _x(metre: float, low: float, high: float, width: float) -> float:
    return MARGIN + (metre - low) / max(high - low, 1e-9) * (width - 2 * MARGIN)


def _span(page: SurveyPage) -> tuple[float, float]:
    metres = [o.distance_m for o in page.observations if not math.isnan(o.distance_m)]
    metres += [o.end_m for o in page.observations if o.end_m is not None]
    if not metres:
        return 0.0, 1.0
    return min(metres), max(max(metres), min(metres) + 1.0)


def _ticks(low: float, high: float) -> list[float]:
    step = next(s for s in (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500) if (high - low) / s <= 12)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 1)]


def strip_svg(page: SurveyPage) -> str:
    """The pipe as a horizontal band from the first to the last distance, with each observation at
    its metre: nodes as lines, points as dots, continuous defects as bars (review in amber)."""
    low, high = _span(page)
    parts = [
        f'<svg id="strip" xmlns="http://www.w3.org/2000/svg" width="{STRIP_W}" height="{STRIP_H}" '
        f'viewBox="0 0 {STRIP_W} {STRIP_H}" role="img" aria-label="the pipe with its observations">',
        f'<rect x="{MARGIN}" y="60" width="{STRIP_W - 2 * MARGIN}" height="30" fill="{PIPE_COLOUR}" rx="4"/>',
    ]
    for tick in _ticks(low, high):
        x = _x(tick, low, high, STRIP_W)
        parts.append(f'<line x1="{x:.1f}" y1="90" x2="{x:.1f}" y2="98" stroke="#6b7280"/>')
        parts.append(f'<text x="{x:.1f}" y="112" font-size="11" text-anchor="middle">{tick:g} m</text>')
    row, labelled = 0, []  # labels of observations within LABEL_GAP_PX of one another are merged
    for obs in page.observations:
        if math.isnan(obs.distance_m) or obs.continuous.startswith("F"):
            continue
        x = _x(obs.distance_m, low, high, STRIP_W)
        colour = REVIEW_COLOUR if obs.review else SURE_COLOUR
        label = html.escape(obs.code or obs.label)
        if obs.label in ("start", "finish"):
            parts.append(f'<line x1="{x:.1f}" y1="52" x2="{x:.1f}" y2="98" stroke="{NODE_COLOUR}" stroke-width="3"/>')
            parts.append(f'<text x="{x:.1f}" y="135" font-size="11" text-anchor="middle">{label}</text>')
            continue
        if obs.end_m is not None:
            x_end = _x(obs.end_m, low, high, STRIP_W)
            parts.append(
                f'<rect x="{min(x, x_end):.1f}" y="64" width="{max(abs(x_end - x), 2):.1f}" height="22" '
                f'fill="{colour}" fill-opacity="0.55"><title>{label} {obs.distance_m:.2f}-{obs.end_m:.2f} m</title></rect>'
            )
        else:
            parts.append(
                f'<circle cx="{x:.1f}" cy="75" r="6" fill="{colour}"><title>{label} at {obs.distance_m:.2f} m</title></circle>'
            )
        if labelled and x - labelled[-1][0] < LABEL_GAP_PX:
            labelled[-1][2].append(label)
            continue
        labelled.append((x, colour, [label], row))
        row += 1
    for x, colour, labels, index in labelled:
        y_text = 20 + 14 * (index % 3)
        text = labels[0] if len(labels) == 1 else f"{labels[0]} +{len(labels) - 1}"
        parts.append(
            f'<line x1="{x:.1f}" y1="{y_text + 3}" x2="{x:.1f}" y2="64" stroke="{colour}" stroke-width="0.8"/>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{y_text}" font-size="11" text-anchor="middle" fill="{colour}">{text}'
            f"<title>{' '.join(labels)}</title></text>"
        )
    parts.append("</svg>")
    return "\n".join(parts)


def distance_svg(name: str, distances: Distances) -> str:
    """Distance over video time: counter readings as dots, the cleaned distance as a line."""
    known = [
        (t, m, s)
        for t, m, s in zip(distances.times, distances.metres, distances.sources, strict=True)
        if not math.isnan(m)
    ]
    if not known:
        return f"<p>{html.escape(name)}: no distance known.</p>"
    t_high = max(float(distances.times[-1]), 1e-9)
    m_low, m_high = min(m for _, m, _ in known), max(m for _, m, _ in known)
    m_high = max(m_high, m_low + 1.0)

    def xy(t: float, m: float) -> tuple[float, float]:
        x = MARGIN + t / t_high * (PLOT_W - 2 * MARGIN)
        y = PLOT_H - MARGIN - (m - m_low) / (m_high - m_low) * (PLOT_H - 2 * MARGIN)
        return x, y

    points = [(xy(t, m), source) for t, m, source in known]
    line = " ".join(f"{x:.1f},{y:.1f}" for (x, y), _ in points)
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="1.8" fill="{SURE_COLOUR}"/>'
        for (x, y), source in points
        if source == READ
    )
    axis = (
        f'<line x1="{MARGIN}" y1="{PLOT_H - MARGIN}" x2="{PLOT_W - MARGIN}" y2="{PLOT_H - MARGIN}" stroke="#6b7280"/>'
        f'<text x="{MARGIN}" y="{PLOT_H - 12}" font-size="11">0 s</text>'
        f'<text x="{PLOT_W - MARGIN}" y="{PLOT_H - 12}" font-size="11" text-anchor="end">{t_high:.0f} s</text>'
        f'<text x="4" y="{PLOT_H - MARGIN}" font-size="11">{m_low:.1f} m</text>'
        f'<text x="4" y="{MARGIN}" font-size="11">{m_high:.1f} m</text>'
    )
    return (
        f'<svg class="distance" xmlns="http://www.w3.org/2000/svg" width="{PLOT_W}" height="{PLOT_H}" '
        f'viewBox="0 0 {PLOT_W} {PLOT_H}" role="img" aria-label="distance over time, {html.escape(name)}">'
        f'{axis}<polyline points="{line}" fill="none" stroke="{NODE_COLOUR}" stroke-width="1.2"/>{dots}</svg>'
    )


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.2f}"
    return html.escape(str(value))


def _photo(page: SurveyPage, name: str) -> str:
    data = page.photos.get(name)
    if not data:
        return _cell(name)
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img class="photo" alt="{html.escape(name)}" src="data:image/jpeg;base64,{encoded}"><span class="muted">{html.escape(name)}</span>'


def table_html(page: SurveyPage) -> str:
    """The observations as a table, one photo each."""
    heads = [
        "distance (m)",
        "to (m)",
        "code",
        "description",
        "cont.",
        "clock",
        "video",
        "time (s)",
        "score",
        "review",
        "photo",
    ]
    lines = ['<table id="observations"><thead><tr>' + "".join(f"<th>{h}</th>" for h in heads) + "</tr></thead><tbody>"]
    for obs in page.observations:
        clock = f"{obs.clock_from}-{obs.clock_to}" if obs.clock_to else obs.clock_from
        cells = [
            _cell(obs.distance_m), _cell(obs.end_m), f"<b>{_cell(obs.code)}</b> <span class=muted>{_cell(obs.label)}</span>",
            _cell(obs.description), _cell(obs.continuous), _cell(clock), _cell(obs.video), _cell(obs.video_s),
            "" if obs.score is None else f"{obs.score:.2f}", "review" if obs.review else "", _photo(page, obs.photo),
        ]  # fmt: skip
        lines.append(
            f'<tr class="{"review" if obs.review else ""}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
        )
    lines.append("</tbody></table>")
    return "\n".join(lines)


def render(page: SurveyPage) -> str:
    """The whole page as HTML text."""
    header = page.header.items() or [("section", "(not given)")]
    header_rows = "".join(
        f"<tr><th>{html.escape(k.replace('_', ' '))}</th><td>{html.escape(v)}</td></tr>" for k, v in header
    )
    facts = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in page.facts)
    plots = "\n".join(f"<h3>{html.escape(name)}</h3>{distance_svg(name, d)}" for name, d in page.distances.items())
    reviewed = sum(o.review for o in page.observations)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(page.title)} {html.escape(page.header.section)}</title>
<style>{STYLE}</style></head><body>
<h1>{html.escape(page.title)}{": " + html.escape(page.header.section) if page.header.section else ""}</h1>
<p class="draft">A draft made by a model, for an inspector to review: {len(page.observations)} observations,
{reviewed} flagged for review. Codes are the map's (hybrid survey --list-codes); grades, characterisations
and quantities are the inspector's.</p>
<h2>Header</h2><table id="header">{header_rows}</table>
<h2>The pipe</h2>{strip_svg(page)}
<h2>Observations</h2>{table_html(page)}
<h2>Distance over time</h2>{plots}
<h2>How this draft was made</h2><table id="facts">{facts}</table>
</body></html>
"""
