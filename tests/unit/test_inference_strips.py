"""The list check's strips read side by side give the sequential check's scores, bit for bit
(services/inference/strips.py), on banners (every strip read) and on lists (stopped at the first list
strip, the strips after it cancelled or dropped)."""

from __future__ import annotations

from typing import Any

import pytest

from services.common.config.settings import DEFAULT_MODEL
from services.inference import listcheck
from services.inference.classifier import Classifier
from services.inference.strips import StripReader
from tests.unit.test_inference_listcheck import H, W, _draw
from tests.unit.test_inference_reader_exact import _frames
from tools.bench.frames import bench_frames


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier(DEFAULT_MODEL, warmup_batch=1)


def test_side_by_side_strips_score_like_the_sequential_check(clf: Classifier) -> None:
    assert clf.reader is not None
    strips = StripReader(clf.reader, threads=3)
    try:
        _, banners = bench_frames()
        rows = [("VICTORY!", 0.12, 0.07), ("DEFEAT", 0.26, 0.07), ("DRAW", 0.40, 0.07), ("VICTORY!", 0.54, 0.07),
                ("DEFEAT", 0.68, 0.07), ("DRAW", 0.82, 0.07)]
        frames = [*banners[:4], *_frames(), (_draw(rows), W, H)]
        lists = 0
        for data, w, h in frames:
            _, image = clf.reader.read_frame(data, w, h)
            want = clf.reader.neighbours(image)
            assert strips.scores(image) == want
            lists += listcheck.is_list(want, clf.reader.spec) and len(want) < len(listcheck.bands(clf.reader.spec.roi))
        assert lists >= 1, "a list stopped early is among the frames (else the cancelling is not pinned)"
    finally:
        strips.close()


def test_the_wider_crop_read_beside_the_crop_gives_the_same_reading_bit_for_bit(clf: Classifier) -> None:
    """A reading that reads its wider crop on a pool thread (speculating that it will want it) equals the
    plain reading on banners (the wider crop wanted) and on frames without our words (its result dropped)."""
    assert clf.reader is not None and clf.reader.spec.widen > 0
    strips = StripReader(clf.reader, threads=2)
    try:
        _, banners = bench_frames()
        widened = 0
        for data, w, h in [*banners[:4], *_frames()]:
            want, want_image = clf.reader.read_frame(data, w, h)
            got, image = strips.read_frame(data, w, h, speculate=True)
            assert (got.words, got.labels, got.text, got.looks, got.clipped, got.widened) == (
                want.words, want.labels, want.text, want.looks, want.clipped, want.widened)
            assert (image == want_image).all()
            widened += got.widened
        assert 0 < widened < len(banners[:4]) + len(_frames()), "both paths (wider crop wanted or not) are pinned"
    finally:
        strips.close()


def _plain(stages: dict[str, Any]) -> dict[str, Any]:
    """A frame's stages without the reader's own timing (``ms``)."""
    return {k: ({kk: vv for kk, vv in v.items() if kk != "ms"} if k == "reader" else v) for k, v in stages.items()}


def test_a_channel_read_side_by_side_gets_the_same_predictions_as_on_one_thread() -> None:
    """The worker's path (hint given, the schedule and memory): the wider crop read beside the crop after a
    reading that named an outcome, the list check's strips read beside the wider crop — the same label,
    probabilities and stages on every frame as with one reader thread, and both side-by-side paths ran."""
    from services.inference.banner import BannerReader

    gameplay, banners = bench_frames()
    frames = [*gameplay[:4], *banners[:6], *gameplay[4:8], *banners[6:10]]
    one = BannerReader(Classifier(DEFAULT_MODEL, warmup_batch=1, reader_threads=1))
    two = BannerReader(Classifier(DEFAULT_MODEL, warmup_batch=1, reader_threads=2))
    assert two.strips is not None
    strips, taken = two.strips, []
    scores = strips.scores

    def counted(image: Any) -> Any:
        taken.append(strips._ahead is not None and strips._ahead[0] is image)  # its strips started ahead
        return scores(image)

    strips.scores = counted  # type: ignore[method-assign]
    try:
        for i, (data, w, h) in enumerate(frames):
            a = one.classify_frame("c", i * 250, data, w, h, hint=lambda: None)
            b = two.classify_frame("c", i * 250, data, w, h, hint=lambda: None)
            assert (a.label, a.confidence, a.probs, _plain(a.stages)) == (b.label, b.confidence, b.probs,
                                                                          _plain(b.stages)), i
        assert one.stats.as_dict() == two.stats.as_dict()
        assert one.stats.list_checks >= 1 and any(taken), "a list check ran, its strips started ahead"
    finally:
        two.strips.close()


def test_one_thread_is_the_readers_own_check(clf: Classifier) -> None:
    assert clf.reader is not None
    strips = StripReader(clf.reader, threads=1)
    _, banners = bench_frames()
    _, image = clf.reader.read_frame(*banners[0])
    assert strips.scores(image) == clf.reader.neighbours(image)
    assert strips._pool is None  # no thread started


def test_the_worker_reads_the_strips_on_reader_threads_and_the_recogniser_on_one() -> None:
    clf = Classifier(DEFAULT_MODEL, warmup_batch=1, reader_threads=2)
    from services.inference.banner import BannerReader

    banner = BannerReader(clf)
    assert banner.strips is not None and banner.strips.threads == 2
    assert clf.reader is not None
    assert clf.reader.session.get_session_options().intra_op_num_threads == 1



_FORKED: dict[str, Any] = {}


def _child(conn: Any) -> None:
    conn.send(_FORKED["strips"].scores(_FORKED["image"]))
    conn.close()


def test_a_forked_child_reads_its_strips_on_threads_of_its_own(clf: Classifier) -> None:
    """A child forked after the pool started has the pool object but not its threads: it starts its own
    (else its first list check would wait forever)."""
    import multiprocessing as mp

    assert clf.reader is not None
    strips = StripReader(clf.reader, threads=2)
    _, banners = bench_frames()
    _, image = clf.reader.read_frame(*banners[0])
    want = strips.scores(image)  # the pool runs in this process
    _FORKED.update(strips=strips, image=image)
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child,))
    proc.start()
    try:
        assert parent.poll(20), "the child's list check never finished"
        assert parent.recv() == want
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
        strips.close()
        _FORKED.clear()
