"""What decoding only the gate's ROI of a JPEG would save, and whether its pixels stay the same (issue 21.7).

The gate reads a ROI of the frame (model metadata); the worker decodes the whole JPEG at 1/2 (1/4, 1/8) scale
with OpenCV and crops. libjpeg-turbo can crop columns (``jpeg_crop_scanline``), skip rows
(``jpeg_skip_scanlines``: entropy decoding only) and stop after the ROI's last row. No maintained Python binding
exposes that on this machine (PyTurboJPEG 2.x needs libjpeg-turbo >= 3.0's TurboJPEG library; Debian bookworm
has 2.1.5), so this measures it through a small C helper compiled here against the system libjpeg (a C
compiler and ``libjpeg-dev`` are needed; it is a measurement, not part of the worker):

    python -m tools.bench.roi_decode [--margin 8] [--rounds 3]

It compares, on the bench's frames (the gameplay pan, the demo and bench gameplay, the banners) and on
re-encodings of some of them at other sizes and chroma subsamplings, the ROI decoded by the helper (the column
crop widened by ``--margin`` pixels on each side, at the decode's scale) with today's
``vision.decode_frame`` + ``vision.crop_roi``, pixel for pixel, and times both (CPU, one thread, alternated per
frame).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tools.bench.report import percentile

MODEL = Path(__file__).resolve().parents[2] / "models" / "victory_classifier.onnx"
SIZES = ((1280, 720), (1920, 1080), (854, 480), (2560, 1440))

# mode 0: the whole frame at 1/denom, the box's rows copied; mode 1: columns cropped (widened by margin),
# rows above the box (less margin) skipped, decoding stopped after the box's last row. -1 on any libjpeg error.
C_SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <jpeglib.h>
struct err { struct jpeg_error_mgr pub; jmp_buf jb; };
static void on_error(j_common_ptr c) { longjmp(((struct err *)c->err)->jb, 1); }
static void quiet(j_common_ptr c, int level) { (void)c; (void)level; }
int roi_decode(const unsigned char *data, unsigned long n, int denom, int x0, int y0, int x1, int y1,
               int margin, unsigned char *out, int mode) {
  struct jpeg_decompress_struct ci; struct err e; unsigned char *volatile row = NULL;
  ci.err = jpeg_std_error(&e.pub); e.pub.error_exit = on_error; e.pub.emit_message = quiet;
  if (setjmp(e.jb)) { jpeg_destroy_decompress(&ci); free(row); return -1; }
  jpeg_create_decompress(&ci);
  jpeg_mem_src(&ci, data, n);
  jpeg_read_header(&ci, TRUE);
  ci.out_color_space = JCS_EXT_BGR; ci.scale_num = 1; ci.scale_denom = denom;
  jpeg_start_decompress(&ci);
  int w = (int)ci.output_width, h = (int)ci.output_height, ow = x1 - x0;
  if (x0 < 0 || y0 < 0 || x1 > w || y1 > h || x0 >= x1 || y0 >= y1) { jpeg_destroy_decompress(&ci); return -2; }
  JDIMENSION cx = 0, cw = (JDIMENSION)w;
  if (mode == 1) {
    int a = x0 - margin < 0 ? 0 : x0 - margin, b = x1 + margin > w ? w : x1 + margin;
    cx = (JDIMENSION)a; cw = (JDIMENSION)(b - a);
    jpeg_crop_scanline(&ci, &cx, &cw);
    int skip = y0 - margin;
    if (skip > 0) jpeg_skip_scanlines(&ci, (JDIMENSION)skip);
  }
  row = malloc((size_t)cw * 3);
  if (row == NULL) { jpeg_destroy_decompress(&ci); return -3; }
  while ((int)ci.output_scanline < y1) {
    int y = (int)ci.output_scanline;
    JSAMPROW r = row;
    jpeg_read_scanlines(&ci, &r, 1);
    if (y >= y0) memcpy(out + (size_t)(y - y0) * ow * 3, row + (size_t)(x0 - (int)cx) * 3, (size_t)ow * 3);
  }
  if (mode == 0) {
    while (ci.output_scanline < ci.output_height) { JSAMPROW r = row; jpeg_read_scanlines(&ci, &r, 1); }
    jpeg_finish_decompress(&ci);
  } else {
    jpeg_abort_decompress(&ci);
  }
  jpeg_destroy_decompress(&ci); free(row);
  return 0;
}
"""


def build(workdir: Path) -> ctypes.CDLL:
    """Compile the helper against the system libjpeg; a clear error when that cannot be done."""
    cc = shutil.which(os.environ.get("CC", "cc"))
    if cc is None:
        raise SystemExit("roi_decode: no C compiler (cc) on PATH: this measurement needs one and libjpeg-dev")
    src, lib = workdir / "roi.c", workdir / "libroi.so"
    src.write_text(C_SOURCE, encoding="utf-8")
    done = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(lib), str(src), "-ljpeg"],
                          capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"roi_decode: cannot build the helper against libjpeg (libjpeg-dev?): {done.stderr.strip()}")
    dll = ctypes.CDLL(str(lib))
    dll.roi_decode.argtypes = [ctypes.c_char_p, ctypes.c_ulong, *[ctypes.c_int] * 6, ctypes.c_void_p, ctypes.c_int]
    dll.roi_decode.restype = ctypes.c_int
    return dll


def roi_box_at_scale(width: int, height: int, meta: Any) -> tuple[int, tuple[int, int, int, int]]:
    """The decode's reduction and the ROI's box in the reduced frame, as the worker computes them (pure)."""
    from services.inference import vision

    reduction = vision.reduction_for(width, height, meta)
    # libjpeg's scaled size rounds up (jdiv_round_up), as OpenCV's reduced decode does
    return reduction, vision.roi_box(-(-width // reduction), -(-height // reduction), meta.roi)


def decode_roi(dll: ctypes.CDLL, data: bytes, width: int, height: int, meta: Any, margin: int,
               mode: int = 1) -> npt.NDArray[np.uint8] | None:
    reduction, (x0, y0, x1, y1) = roi_box_at_scale(width, height, meta)
    out = np.empty((y1 - y0, x1 - x0, 3), np.uint8)
    rc = dll.roi_decode(data, len(data), reduction, x0, y0, x1, y1, margin, out.ctypes.data, mode)
    return out if rc == 0 else None


def frames() -> list[tuple[bytes, int, int]]:
    """The bench's frames and re-encodings of every 20th at other sizes and chroma subsamplings."""
    import cv2

    from tools.bench.frames import bench_frames
    from training.synth.episodes import pan_gameplay

    demo, banners = bench_frames()
    base = [*pan_gameplay(), *demo, *banners]
    out = list(base)
    samplings = (cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
                 cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422)
    for data, _, _ in base[::20]:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None
        for w, h in SIZES:
            big = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
            for sampling in samplings:
                ok, enc = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 80,
                                                     cv2.IMWRITE_JPEG_SAMPLING_FACTOR, sampling])
                assert ok
                out.append((enc.tobytes(), w, h))
    return out


def run(margins: Sequence[int] = (0, 8), rounds: int = 3, timed_frames: int = 300) -> dict[str, Any]:
    import cv2

    from services.inference import vision

    cv2.setNumThreads(1)
    meta = vision.ModelMeta.load(vision.meta_path_for(MODEL))
    items = frames()
    with tempfile.TemporaryDirectory() as tmp:
        dll = build(Path(tmp))
        equal: dict[str, Any] = {}
        for margin in margins:
            differ = {"640x360": 0, "other sizes": 0}
            for data, w, h in items:
                ref = vision.crop_roi(vision.decode_frame(data, meta, w, h), meta.roi)
                got = decode_roi(dll, data, w, h, meta, margin)
                if got is None or got.shape != ref.shape or not np.array_equal(got, ref):
                    differ["640x360" if (w, h) == (640, 360) else "other sizes"] += 1
            equal[f"margin_{margin}"] = {"frames_differing": differ}
        margin = max(margins)
        timed = [f for f in items if (f[1], f[2]) == (640, 360)][:timed_frames]
        rounds_out = []
        for _ in range(rounds):
            opencv: list[float] = []
            region: list[float] = []
            for data, w, h in timed:
                t0 = time.thread_time()
                vision.crop_roi(vision.decode_frame(data, meta, w, h), meta.roi)
                t1 = time.thread_time()
                decode_roi(dll, data, w, h, meta, margin)
                t2 = time.thread_time()
                opencv.append((t1 - t0) * 1000.0)
                region.append((t2 - t1) * 1000.0)
            rounds_out.append({"opencv_decode_and_crop_p50_ms": round(percentile(np.asarray(opencv), 50), 3),
                               "region_decode_p50_ms": round(percentile(np.asarray(region), 50), 3)})
    return {"frames": len(items), "frames_640x360": sum(1 for f in items if (f[1], f[2]) == (640, 360)),
            "pixels": equal, "cpu_margin": margin, "cpu_frames": len(timed), "cpu_rounds": rounds_out,
            "load_average": [round(v, 2) for v in os.getloadavg()]}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.bench.roi_decode", description=__doc__.split("\n\n")[0])
    ap.add_argument("--margin", type=int, default=8, help="columns (and rows) decoded beyond the ROI on each side")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    print(json.dumps(run((0, args.margin) if args.margin else (0,), args.rounds), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
