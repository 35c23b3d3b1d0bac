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
from collections.abc import Callable
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
        # a list check started ahead (:meth:`read_frame`'s ``ahead``): the frame it reads and its strips
        self._ahead: tuple[npt.NDArray[np.uint8], list[Future[float]]] | None = None

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None or self._pid != os.getpid():  # a forked child has the pool but not its threads
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="owc-list-check")
            self._pid = os.getpid()
            self._ahead = None
        return self._pool

    def read_frame(self, data: bytes, width: int | None, height: int | None, speculate: bool = False,
                   ahead: Callable[[Reading], bool] | None = None) -> tuple[Reading, npt.NDArray[np.uint8]]:
        """:meth:`Reader.read_frame <services.inference.reader.Reader.read_frame>`, its recogniser runs side by
        side when there is more than one thread — the same reading bit for bit (the same runs, only at once):

        - ``speculate`` (the channel's last reading named an outcome: this frame's most likely needs its wider
          crop read too): the wider crop is read on a pool thread while this one reads the crop; when the
          crop's reading does not want the wider one, that run's result is dropped;
        - ``ahead(reading)``, asked once the crop is read and wants its wider crop: True when the caller will
          most likely run the list check on this frame at once (:meth:`scores`); its strips are then read on
          the pool's threads while this one reads the wider crop (a banner's first frame: its list check runs
          after the reading, and the confirming frame waits for it). When no list check asks for them, they
          are dropped (:meth:`discard`)."""
        reader = self.reader
        if self.threads == 1 or reader.spec.widen <= 0 or not (speculate or ahead is not None):
            return reader.read_frame(data, width, height)
        image = reader.decode(data, width, height)
        crop = vision.crop_roi(image, reader.spec.roi)
        wide = self._executor().submit(reader.steps, reader.wide_crop(image)) if speculate else None
        try:
            reading = reader.read_image(crop, image)
            if not reader.wants_whole_word(reading, crop):
                return reading, image
            if ahead is not None and ahead(reading):
                self._start(image)
            return reader.whole_word(image, crop, reading, wide_steps=wide.result if wide else None), image
        finally:
            if wide is not None:
                wide.cancel()  # not started yet: never runs (a started one runs out, its result unused)

    def _start(self, image: npt.NDArray[np.uint8]) -> list[Future[float]]:
        self.discard()
        pool = self._executor()
        futures = [pool.submit(self.reader.strip_score, image, band) for band in listcheck.bands(self.reader.spec.roi)]
        self._ahead = (image, futures)
        return futures

    def discard(self) -> None:
        """Drop a list check started ahead that no :meth:`scores` took (its strips not started never run)."""
        if self._ahead is not None:
            for future in self._ahead[1]:
                future.cancel()
            self._ahead = None

    def scores(self, image: npt.NDArray[np.uint8]) -> list[float]:
        if self.threads == 1:
            return self.reader.neighbours(image)
        spec = self.reader.spec
        if self._ahead is not None and self._ahead[0] is image:  # started ahead on this very frame
            futures, self._ahead = self._ahead[1], None
        else:
            futures = self._start(image)
            self._ahead = None
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
