"""The list check's strips read side by side: a banner's confirmation sooner, the same scores.

:meth:`Reader.neighbours <services.inference.reader.Reader.neighbours>` reads the strips above and
below the crop one after the other (:mod:`services.inference.listcheck`); on a banner's first frame
that is ~35 ms after its reading, and the confirming frame, taken ~50 ms after the first, waits for
it. The recogniser's own intra-op threads gain nothing on this small model at batch 1 (measured: the
same wall time, more CPU), but two strips are two independent recogniser runs: read by ``threads``
threads at once (onnxruntime releases the GIL), the check takes about half the wall time when a core
is free, for the same CPU.

Same results as the sequential check, bit for bit (``tests/unit/test_inference_strips.py``): the
strips are read in their order and the scores returned are the sequential ones, up to and including
the first strip that reads as a list; strips not yet started then are cancelled (on a list a strip
or two may have been read for nothing, never on a banner, where every strip is read anyway).
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import numpy.typing as npt

from services.inference import listcheck, vision
from services.inference.reader import Reader, Reading


class StripReader:
    """The list check of a decoded frame on up to ``threads`` threads (1: the reader's own sequential
    check). The pool's threads start on the first check and then wait idle (no CPU)."""

    def __init__(self, reader: Reader, threads: int = 1) -> None:
        self.reader = reader
        self.threads = max(1, threads)
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None or self._pid != os.getpid():  # a forked child has the pool but not its threads
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="owc-list-check")
            self._pid = os.getpid()
        return self._pool

    def read_frame(self, data: bytes, width: int | None, height: int | None,
                   speculate: bool = False) -> tuple[Reading, npt.NDArray[np.uint8]]:
        """:meth:`Reader.read_frame <services.inference.reader.Reader.read_frame>`; with ``speculate`` (the
        channel's last reading named an outcome: this frame's will most likely need its wider crop read too)
        and more than one thread, the wider crop is read on a pool thread while this one reads the crop. The
        same reading bit for bit (the same recogniser runs, only at once); when the crop's reading turns out
        not to want the wider one, that run's result is dropped."""
        reader = self.reader
        if self.threads == 1 or not speculate or reader.spec.widen <= 0:
            return reader.read_frame(data, width, height)
        image = reader.decode(data, width, height)
        crop = vision.crop_roi(image, reader.spec.roi)
        wide = self._executor().submit(reader.steps, reader.wide_crop(image))
        try:
            reading = reader.read_image(crop)
            if not reader.wants_whole_word(reading, crop):
                return reading, image
            return reader.whole_word(image, crop, reading, wide_steps=wide.result), image
        finally:
            wide.cancel()  # not started yet: never runs (a started one runs out, its result unused)

    def scores(self, image: npt.NDArray[np.uint8]) -> list[float]:
        if self.threads == 1:
            return self.reader.neighbours(image)
        spec = self.reader.spec
        pool = self._executor()
        futures: list[Future[float]] = [
            pool.submit(self.reader.strip_score, image, band) for band in listcheck.bands(spec.roi)
        ]
        out: list[float] = []
        try:
            for future in futures:
                out.append(future.result())
                if listcheck.is_list(out[-1:], spec):
                    break
        finally:
            for future in futures:
                future.cancel()  # the strips after a list (or after an error) that have not started
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
