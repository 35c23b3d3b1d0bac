"""``python -m training.synth --install-fonts`` installs the pinned npm fonts and checks both splits;
``python -m training.synth --examples DIR [--split train|eval]`` writes one PNG per kind of frame to look at."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from training.synth.fonts import install_npm_fonts
from training.synth.negatives import NEGATIVE_KINDS
from training.synth.samples import render_hard_sample, render_sample
from training.synth.splits import EVAL, SPLITS, TRAIN, check_fonts


def _save_png(path: Path, jpeg: bytes) -> Path:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise RuntimeError(f"{path.name}: the rendered frame does not decode")
    cv2.imwrite(str(path), img)
    return path


def write_examples(out: Path, split_name: str = "eval", seed: int = 5150, per_kind: int = 2) -> list[Path]:
    """Render frames until every outcome x language x kind, recording kind and negative kind has examples."""
    split = SPLITS[split_name]
    out.mkdir(parents=True, exist_ok=True)
    wanted: dict[str, int] = {}
    for lab in ("victory", "defeat", "draw"):
        for lang in ("en", "ja"):
            wanted[f"{lab}-{lang}-banner"] = per_kind
        for kind in ("entry", "tab_banner", "tab_hidden"):
            wanted[f"{lab}-{kind}"] = 1
    for rec in ("gif", "blocky", "rescaled"):
        wanted[f"outcome-{rec}"] = per_kind
    for kind in NEGATIVE_KINDS:
        wanted[f"none-{kind}"] = per_kind
    written: list[Path] = []
    for i in range(4000):
        if not any(wanted.values()):
            break
        data, w, h, info = render_sample(seed, i, split)
        lab, kind, rec = info["label"], info["kind"], info["capture"]
        keys = [f"none-{kind}"] if lab == "none" else [
            f"{lab}-{info['lang']}-banner" if kind == "banner" and rec == "plain" else f"{lab}-{kind}",
            f"outcome-{rec}",
        ]
        for key in keys:
            if wanted.get(key, 0) > 0:
                wanted[key] -= 1
                written.append(_save_png(out / f"{key}-{rec}-{w}x{h}-{i}.png", data))
                break
    for i in range(6):
        data, w, h, info = render_hard_sample(seed, i, split)
        written.append(_save_png(out / f"hard-{info['label']}-{info['kind']}-{info['capture']}-{w}x{h}-{i}.png", data))
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.synth")
    parser.add_argument("--install-fonts", action="store_true")
    parser.add_argument("--examples", type=Path, default=None, metavar="DIR")
    parser.add_argument("--split", choices=sorted(SPLITS), default="eval")
    args = parser.parse_args(argv)
    if args.install_fonts:
        install_npm_fonts()
        for sp in (TRAIN, EVAL):
            check_fonts(sp)
        print("fonts ok")
    if args.examples:
        paths = write_examples(args.examples, args.split)
        print(f"wrote {len(paths)} examples to {args.examples}")
    if not (args.install_fonts or args.examples):
        parser.print_usage(sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
