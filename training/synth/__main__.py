"""``python -m training.synth --install-fonts``: install the pinned npm fonts and check both splits."""

from __future__ import annotations

import sys

from training.synth.fonts import install_npm_fonts
from training.synth.splits import EVAL, TRAIN, check_fonts


def main(argv: list[str]) -> int:
    if argv == ["--install-fonts"]:
        install_npm_fonts()
        for sp in (TRAIN, EVAL):
            check_fonts(sp)
        print("fonts ok")
        return 0
    print("usage: python -m training.synth --install-fonts", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
