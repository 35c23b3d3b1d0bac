"""A scan's report for people (a timeline), and for machines (``--json``: one object; ``--csv``: one row per entry)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from services.common.contracts.scanimport import clock
from services.scan.scanner import FrameScore, ScanReport

CSV_COLUMNS = ("kind", "time", "at_ms", "outcome", "confidence", "gate", "reader", "frames", "first_ms", "text")
PLURAL = {"victory": "victories", "defeat": "defeats", "draw": "draws"}


def _frame(f: FrameScore) -> dict[str, Any]:
    return {"seq": f.seq, "at_ms": f.at_ms, "time": clock(f.at_ms), "label": f.label, "confidence": f.confidence,
            "gate": f.gate, "reader": f.reader, "text": f.text}


def _best(frames: list[FrameScore]) -> FrameScore:
    return max(frames, key=lambda f: (f.reader if f.reader is not None else -99.0, f.gate or 0.0))


def as_dict(report: ScanReport, imported: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``--json`` document (its shape is documented in docs/scan.md)."""
    out: dict[str, Any] = {
        "recording": report.recording.describe(),
        "model": report.model,
        "interval_ms": report.interval_ms,
        "frames": report.frames,
        "candidates": report.candidates,
        "errors": len(report.errors),
        "error_examples": report.errors[:5],
        "seconds": round(report.seconds, 3),
        "frames_per_second": round(report.fps, 1),
        "counts": report.counts(),
        "results": [
            {"outcome": r.outcome, "at_ms": r.at_ms, "time": clock(r.at_ms), "confidence": round(r.confidence, 4),
             "frames": [_frame(f) for f in r.frames]}
            for r in report.results
        ],
        "near_misses": [
            {"outcome": n.outcome, "at_ms": n.at_ms, "time": clock(n.at_ms),
             "until_ms": n.frames[-1].at_ms, "frames": [_frame(f) for f in n.frames]}
            for n in report.near_misses
        ],
    }
    if imported is not None:
        out["import"] = imported
    return out


def to_json(report: ScanReport, imported: dict[str, Any] | None = None) -> str:
    return json.dumps(as_dict(report, imported), ensure_ascii=False, indent=1)


def to_csv(report: ScanReport) -> str:
    """``result`` rows then ``near_miss`` rows; stage scores of the entry's best-read frame."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    rows: list[tuple[str, int, str, float, list[FrameScore]]] = [
        ("result", r.at_ms, r.outcome, r.confidence, r.frames) for r in report.results
    ] + [("near_miss", n.at_ms, n.outcome, max(f.confidence for f in n.frames), n.frames) for n in report.near_misses]
    for kind, at, outcome, confidence, frames in sorted(rows, key=lambda row: row[1]):
        best = _best(frames) if frames else None
        writer.writerow([
            kind, clock(at), at, outcome, f"{confidence:.4f}",
            "" if best is None or best.gate is None else f"{best.gate:.4f}",
            "" if best is None or best.reader is None else f"{best.reader:.3f}",
            len(frames), frames[0].at_ms if frames else at, best.text if best else "",
        ])
    return buf.getvalue()


def _scores(frames: list[FrameScore]) -> str:
    best = _best(frames)
    parts = []
    if best.gate is not None:
        parts.append(f"gate {best.gate:.2f}")
    if best.reader is not None:
        parts.append(f"reader {best.reader:+.2f}/letter")
    if best.text:
        parts.append(f"read {best.text!r}")
    return "  ".join(parts)


def timeline(report: ScanReport, imported: dict[str, Any] | None = None) -> str:
    rec = report.recording
    size = f"{rec.width}×{rec.height}, " if rec.width else ""
    lines = [
        f"{rec.path.name}: {rec.kind}, {size}{clock(rec.duration_ms)} (sha256 {rec.sha256[:12]}…)",
        f"detector {report.model}, a frame every {report.interval_ms} ms of recording: {report.frames} frames "
        f"in {report.seconds:.1f} s = {report.fps:.0f} frames/s ({report.candidates} read by the reader"
        + (f", {len(report.errors)} unreadable" if report.errors else "") + ")",
        "",
    ]
    if report.results:
        lines.append("results:")
        for r in report.results:
            lines.append(f"  {clock(r.at_ms)}  {r.outcome.upper():8s} confidence {r.confidence:.3f}  "
                         f"{_scores(r.frames)}  ({len(r.frames)} frames from {clock(r.frames[0].at_ms)})")
    else:
        lines.append("results: none")
    if report.near_misses:
        lines.append("near misses (seen, not counted):")
        for n in report.near_misses:
            lines.append(f"  {clock(n.at_ms)}  {n.outcome.upper():8s} confidence "
                         f"{max(f.confidence for f in n.frames):.3f}  {_scores(n.frames)}  ({len(n.frames)} frames)")
    counts = report.counts()
    lines.append("total: " + ", ".join(f"{n} {k if n == 1 else PLURAL[k]}" for k, n in counts.items()))
    if report.errors:
        lines.append(f"unreadable frames: {len(report.errors)} (first: {report.errors[0]})")
    if imported is not None:
        lines.append(f"import: {imported['added']} added, {imported['already']} already in the history "
                     f"(channel {imported['channel']}, session {imported['session']})")
    return "\n".join(lines)
