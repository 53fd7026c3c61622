"""Formatting of numbers and the HTML builder of the report (one self-contained page, CSS inline)."""

from __future__ import annotations

import html
import math


#: TRIPOD+AI item labels used as section headings (numbers checked against the 27-item checklist of
#: Collins et al., BMJ 2024;385:e078378: 5 data, 7 data preparation, 8 outcome, 9 predictors, 10 sample
#: size, 11 missing data, 12a-g analytical methods, 13 class imbalance, 14 fairness, 15 model output,
#: 16 training versus evaluation, 18a-f open science, 20a-c participants, 21 model development,
#: 22 model specification, 23a-b performance, 26 limitations)
ITEMS = {
    "summary": "Items 1-2 - Title and abstract (summary)",
    "data": "Item 5 - Source of data",
    "prep": "Item 7 - Data preparation and quality control",
    "outcome": "Item 8 - Outcome",
    "predictors": "Item 9 - Predictors",
    "sample": "Item 10 - Sample size",
    "missing": "Item 11 - Missing data",
    "methods": "Item 12 - Analytical methods: model specification and validation design",
    "imbalance": "Item 13 - Class imbalance",
    "output": "Item 15 - Model output",
    "participants": "Item 20 - Participants",
    "development": "Items 21-22 - Model development and model specification",
    "performance": "Item 23 - Model performance",
    "fairness": "Items 14 and 23 - Performance in subgroups (fairness)",
    "explanations": "Explanations of individual predictions (supports items 15 and 25)",
    "extra": "Additional facts supplied with the report",
    "limitations": "Item 26 - Limitations",
    "software": "Item 18 - Open science: software, versions and model files",
    "todo": "Items the software cannot fill",
}

#: commonly recommended minimum number of events for a validation study
#: (Collins, Ogundimu and Altman, Stat Med 2016;35:214-226)
MIN_VALIDATION_EVENTS = 100
#: traditional rule of thumb of events per candidate predictor parameter for development
#: (a full sample-size calculation: Riley et al., BMJ 2020;368:m441)
MIN_EPV = 10
#: explanation subjects embedded at most (the rest are counted)
MAX_EXPLANATIONS = 12
#: flagged / excluded QC subjects listed at most
MAX_QC_ROWS = 60
#: a categorical column or QC attribute with 2..this many levels defines subgroups
MAX_SUBGROUP_LEVELS = 6
MIN_SUBGROUP_N = 10

MISSING_TEXT = ("", "na", "nan", "none", "null")


# ------------------------------------------------------------------------------ formatting

def fmt_spec(x, spec: str) -> str:
    """``x`` formatted with ``spec``; "n/a" for None or non-finite numbers, text as given."""
    if x is None:
        return "n/a"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    return format(v, spec) if math.isfinite(v) else "n/a"


def fnum(x, nd: int = 3) -> str:
    return fmt_spec(x, f".{nd}f")


def gnum(x) -> str:
    return fmt_spec(x, ".4g")


def ci_text(lo_hi, nd: int = 3) -> str:
    if not lo_hi or lo_hi[0] is None or lo_hi[1] is None:
        return "CI n/a"
    return f"{fnum(lo_hi[0], nd)}-{fnum(lo_hi[1], nd)}"


def with_ci(res: dict, key: str, nd: int = 3) -> str:
    if res is None or res.get(key) is None:
        return "n/a"
    ci = res.get(f"{key}_ci")
    return f"{fnum(res[key], nd)} ({ci_text(ci, nd)})" if ci is not None else fnum(res[key], nd)


def p_text(p) -> str:
    if p is None:
        return "n/a"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def pct(k, n) -> str:
    return f"{k} ({100.0 * k / n:.0f} %)" if n else str(k)


class Html:
    """A small HTML builder; every piece of text goes through :func:`html.escape`."""

    def __init__(self):
        self.parts: list = []
        self.toc: list = []

    def h2(self, key: str, label: str | None = None):
        label = label or ITEMS[key]
        self.toc.append((key, label))
        self.parts.append(f'<h2 id="{html.escape(key)}">{html.escape(label)}</h2>')

    def h3(self, text):
        self.parts.append(f"<h3>{html.escape(str(text))}</h3>")

    def p(self, text, cls: str | None = None):
        c = f' class="{cls}"' if cls else ""
        self.parts.append(f"<p{c}>{html.escape(str(text))}</p>")

    def ul(self, items, cls: str | None = None):
        if not items:
            return
        c = f' class="{cls}"' if cls else ""
        self.parts.append(f"<ul{c}>" + "".join(f"<li>{html.escape(str(i))}</li>" for i in items) + "</ul>")

    def table(self, header, rows, caption: str | None = None):
        if not rows:
            return
        out = ["<table>"]
        if caption:
            out.append(f"<caption>{html.escape(caption)}</caption>")
        if header:
            out.append("<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>")
        for r in rows:
            out.append("<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in r)
                       + "</tr>")
        out.append("</table>")
        self.parts.append("".join(out))

    def kv(self, pairs, caption: str | None = None):
        self.table(None, [(k, v) for k, v in pairs], caption)

    def img(self, b64: str, alt: str, caption: str | None = None):
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self.parts.append(f'<figure><img src="data:image/png;base64,{b64}" alt="{html.escape(alt)}">'
                          f"{cap}</figure>")

    def render(self, title: str, subtitle: str) -> str:
        toc = "".join(f'<li><a href="#{html.escape(k)}">{html.escape(v)}</a></li>' for k, v in self.toc)
        return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
                f"<h1>{html.escape(title)}</h1>\n<p class=\"sub\">{html.escape(subtitle)}</p>\n"
                f"<nav><ol>{toc}</ol></nav>\n" + "\n".join(self.parts) + "\n</body>\n</html>\n")


CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #345;padding-bottom:.3em}
h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #bbb;padding-bottom:.2em;color:#234}
h3{font-size:1.05em;margin-top:1.3em;color:#345}
.sub{color:#666;margin-top:-.5em}
nav ol{columns:2;font-size:.9em}
table{border-collapse:collapse;margin:.6em 0 1em;font-size:.9em}
caption{text-align:left;font-weight:600;padding:.2em 0;color:#345}
th,td{border:1px solid #ccc;padding:.25em .55em;text-align:left;vertical-align:top}
th{background:#eef2f6}
tr:nth-child(even) td{background:#fafbfc}
figure{margin:1em 0}
figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.85em;color:#555;max-width:900px}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.5em .8em}
.warn{background:#fdecea;border-left:4px solid #d93025;padding:.5em .8em}
ul.lim li{margin-bottom:.3em}
"""
