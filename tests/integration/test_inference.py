"""Inference workers against a real redis-server (session fixture, random prefix per test)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import redis
from prometheus_client import REGISTRY

from services.common.config.settings import Settings
from services.common.contracts.keys import GROUP_INFERENCE, Keys
from services.common.contracts.messages import Frame, Label
from services.inference.classifier import Classifier
from services.inference.worker import InferenceWorker
from tests.support.images import png_bomb
from tests.support.redis_proc import RedisServer
from tests.support.waiting import wait_until
from tools.synthetic_model import write_synthetic_model

W, H = 640, 360


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_model(tmp_path_factory.mktemp("model") / "m.onnx", width=64, height=32, channels=(8, 16))


@pytest.fixture(scope="module")
def victory_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Always says `victory` (a huge bias on that logit)."""
    return write_synthetic_model(
        tmp_path_factory.mktemp("vmodel") / "v.onnx", width=64, height=32, channels=(8,),
        logit_bias=(0.0, 50.0, 0.0, 0.0),
    )


@pytest.fixture(scope="module")
def jpegs() -> list[bytes]:
    rng = np.random.default_rng(1)
    out = []
    for _ in range(6):
        img = cv2.GaussianBlur(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), (7, 7), 0)
        out.append(bytes(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()))
    return out


def now_ms() -> int:
    return int(time.time() * 1000)


def add_frames(client: redis.Redis, keys: Keys, jpegs: list[bytes], seqs: range, channel: str = "main",
               captured_at: int | None = None) -> dict[int, int]:
    stamps = {}
    pipe = client.pipeline(transaction=False)
    for seq in seqs:
        ts = captured_at if captured_at is not None else now_ms()
        stamps[seq] = ts
        frame = Frame(channel, seq, ts, "jpg", W, H, jpegs[seq % len(jpegs)])
        pipe.xadd(keys.frames, frame.to_fields())  # type: ignore[arg-type]
    pipe.execute()
    return stamps


def labels(client: redis.Redis, keys: Keys) -> list[Label]:
    return [Label.from_fields(f) for _, f in client.xrange(keys.labels)]


def pending(client: redis.Redis, keys: Keys) -> int:
    return int(client.xpending(keys.frames, GROUP_INFERENCE)["pending"])


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def make_worker(
    settings_factory: Callable[..., Settings], redis_server: RedisServer, keys: Keys, model: Path
) -> Iterator[Callable[..., InferenceWorker]]:
    clients: list[redis.Redis] = []

    def make(name: str = "w1", model_path: Path | None = None, **overrides: object) -> InferenceWorker:
        settings = settings_factory(inference__model=str(model_path or model), **overrides)
        client = redis_server.client()
        clients.append(client)
        return InferenceWorker(client, keys, Classifier.from_settings(settings.inference), settings.inference, name)

    yield make
    for c in clients:
        c.close()


def test_a_label_for_every_frame_with_ordering_fields_intact(
    make_worker: Callable[..., InferenceWorker], redis_client: redis.Redis, keys: Keys, jpegs: list[bytes]
) -> None:
    worker = make_worker("solo", inference__batch_size=4)
    stamps = add_frames(redis_client, keys, jpegs, range(10), "main")
    stamps2 = add_frames(redis_client, keys, jpegs, range(5), "second")
    before = metric("owc_inference_frames_processed_total")
    assert worker.run(threading.Event(), max_messages=15) == 15
    got = labels(redis_client, keys)
    assert sorted((lb.channel, lb.seq, lb.captured_at) for lb in got) == sorted(
        [("main", s, t) for s, t in stamps.items()] + [("second", s, t) for s, t in stamps2.items()]
    )
    # one worker keeps each channel's order
    assert [lb.seq for lb in got if lb.channel == "main"] == list(range(10))
    for lb in got:
        assert lb.label in ("none", "victory", "defeat", "draw")
        assert lb.model == worker.classifier.model_id and lb.worker == "solo"
        assert abs(sum(lb.probs.values()) - 1.0) < 1e-3 and lb.infer_ms > 0
    assert pending(redis_client, keys) == 0
    assert metric("owc_inference_frames_processed_total") - before == 15
    health = redis_client.hgetall(keys.health("main", "inference"))
    assert health[b"worker"] == b"solo" and health[b"model"] == worker.classifier.model_id.encode()
    assert health[b"last_label"] in (b"none", b"victory", b"defeat", b"draw")
    assert 0 < redis_client.ttl(keys.health("main", "inference")) <= 30


def test_two_workers_share_the_stream_without_duplicates(
    make_worker: Callable[..., InferenceWorker], redis_client: redis.Redis, keys: Keys, jpegs: list[bytes]
) -> None:
    a = make_worker("a", inference__batch_size=3)
    b = make_worker("b", inference__batch_size=3)
    add_frames(redis_client, keys, jpegs, range(60))
    stop = threading.Event()
    done: dict[str, int] = {}
    # each takes exactly half: only sharing can label all 60
    threads = [
        threading.Thread(target=lambda w=w: done.__setitem__(w.name, w.run(stop, max_messages=30)))
        for w in (a, b)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert done == {"a": 30, "b": 30}
    got = labels(redis_client, keys)
    seqs = [lb.seq for lb in got]
    assert sorted(seqs) == list(range(60))  # every frame once, none twice
    assert {lb.worker for lb in got} == {"a", "b"}
    assert pending(redis_client, keys) == 0


def _owc(*args: str) -> list[str]:
    return [sys.executable, "-m", "services", *args]


def _spawn_worker(redis_url: str, prefix: str, model: Path, name: str, *extra: str) -> subprocess.Popen[bytes]:
    cmd = _owc(
        "inference", "--name", name,
        "--set", f"redis.url={redis_url}", "--set", f"redis.prefix={prefix}",
        "--set", "inference.metrics_port=0", "--set", f"inference.model={model}",
        "--set", "inference.max_frame_age_ms=600000", *extra,
    )
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("OWC_")}
    return subprocess.Popen(cmd, cwd=Path(__file__).resolve().parents[2], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_kill_9_worker_pending_frames_are_reclaimed_by_another(
    redis_server: RedisServer, redis_client: redis.Redis, keys: Keys, jpegs: list[bytes], model: Path
) -> None:
    total = 400
    add_frames(redis_client, keys, jpegs, range(total))
    a = _spawn_worker(redis_server.url, keys.prefix, model, "victim",
                      "--set", "inference.batch_size=16", "--set", "inference.claim_idle_ms=500")
    b: subprocess.Popen[bytes] | None = None
    try:
        wait_until(lambda: redis_client.xlen(keys.labels) > 0, timeout=30, message="the first worker's labels")
        # freeze it until it holds frames it has read but not acked, then kill -9
        victim_pending: list[bytes] = []

        def frozen_with_pending() -> bool:
            os.kill(a.pid, signal.SIGSTOP)
            rows = redis_client.xpending_range(keys.frames, GROUP_INFERENCE, "-", "+", 1000, consumername="victim")
            if rows:
                victim_pending[:] = [r["message_id"] for r in rows]
                return True
            os.kill(a.pid, signal.SIGCONT)
            time.sleep(0.003)  # let it run a little before freezing it again
            return False

        wait_until(frozen_with_pending, timeout=20, interval=0.0, message="the victim holding unacked frames")
        os.kill(a.pid, signal.SIGKILL)
        a.wait(10)
        labelled_before = {lb.seq for lb in labels(redis_client, keys)}
        assert labelled_before and len(labelled_before) < total
        b = _spawn_worker(redis_server.url, keys.prefix, model, "rescuer",
                          "--set", "inference.batch_size=16", "--set", "inference.claim_idle_ms=500")
        try:
            wait_until(lambda: redis_client.xlen(keys.labels) >= total and pending(redis_client, keys) == 0,
                       timeout=45, message="all frames labelled after the kill")
        except AssertionError:
            b.kill()
            out = b.communicate(timeout=10)[0].decode(errors="replace")[-3000:]
            info = redis_client.xinfo_groups(keys.frames)
            n = redis_client.xlen(keys.labels)
            raise AssertionError(f"labels={n} groups={info}\nrescuer log:\n{out}") from None
        got = labels(redis_client, keys)
        assert sorted(lb.seq for lb in got) == list(range(total))  # nothing lost, nothing twice
        entries = {eid: Frame.from_fields(f).seq for eid, f in redis_client.xrange(keys.frames)}
        rescued = {entries[eid] for eid in victim_pending}
        by_seq = {lb.seq: lb.worker for lb in got}
        assert all(by_seq[s] == "rescuer" for s in rescued)
        b.send_signal(signal.SIGTERM)
        assert b.wait(15) == 0
    finally:
        for p in (a, b):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(5)


def test_poison_frames_give_one_error_label_and_are_acked(
    make_worker: Callable[..., InferenceWorker], redis_client: redis.Redis, keys: Keys, jpegs: list[bytes]
) -> None:
    worker = make_worker("p", inference__batch_size=8)
    ts = now_ms()
    good = Frame("main", 1, ts, "jpg", W, H, jpegs[0]).to_fields()
    poison = [
        {**good, b"seq": b"2", b"image": b"definitely not a jpeg"},  # undecodable
        {**good, b"seq": b"3", b"image": b""},  # zero-size
        {**good, b"seq": b"4", b"format": b"gif"},  # wrong type
        {**good, b"seq": b"5", b"width": b"0"},  # malformed field
    ]
    unreadable = {k: v for k, v in good.items() if k != b"channel"}
    before = metric("owc_inference_frames_dropped_total", reason="poison")
    for fields in [*poison, unreadable, {**good, b"seq": b"6"}]:
        redis_client.xadd(keys.frames, fields)  # type: ignore[arg-type]
    assert worker.run(threading.Event(), max_messages=6) == 6
    got = {lb.seq: lb for lb in labels(redis_client, keys)}
    assert sorted(got) == [2, 3, 4, 5, 6]
    for seq in (2, 3, 4, 5):
        assert got[seq].label == "error" and got[seq].error and got[seq].captured_at == ts
    assert "format" in got[4].error and "width" in got[5].error
    assert got[6].label != "error"
    assert pending(redis_client, keys) == 0
    dlq = redis_client.xrange(Keys.dlq(keys.frames))
    assert len(dlq) == 1 and b"poison" in dlq[0][1][b"dlq_reason"]
    assert metric("owc_inference_frames_dropped_total", reason="poison") - before == 4


def test_a_decompression_bomb_frame_becomes_an_error_label_without_decoding(
    make_worker: Callable[..., InferenceWorker], redis_client: redis.Redis, keys: Keys, jpegs: list[bytes]
) -> None:
    worker = make_worker("b")
    bomb = png_bomb(20000, 20000)
    ts = now_ms()  # after building the bomb (seconds on a busy machine): the frames must not be stale
    redis_client.xadd(keys.frames, Frame("main", 1, ts, "png", 20000, 20000, bomb).to_fields())  # type: ignore[arg-type]
    redis_client.xadd(keys.frames, Frame("main", 2, ts, "png", W, H, bomb).to_fields())  # type: ignore[arg-type]
    add_frames(redis_client, keys, jpegs, range(3, 4))
    started = time.perf_counter()
    assert worker.run(threading.Event(), max_messages=3) == 3
    assert time.perf_counter() - started < 5  # a decoded bomb alone takes seconds (and 1.2 GB)
    got = {lb.seq: lb for lb in labels(redis_client, keys)}
    assert got[1].label == "error" and "too large" in got[1].error
    assert got[2].label == "error" and "too large" in got[2].error
    assert got[3].label != "error"
    assert pending(redis_client, keys) == 0


def test_a_frame_that_fails_repeatedly_goes_to_the_dead_letter_stream(
    make_worker: Callable[..., InferenceWorker], redis_client: redis.Redis, keys: Keys, jpegs: list[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker = make_worker("f", inference__claim_idle_ms=100, inference__max_deliveries=2, inference__block_ms=20)

    def broken(batch: np.ndarray) -> np.ndarray:
        raise RuntimeError("model exploded")

    monkeypatch.setattr(worker.classifier, "predict", broken)
    add_frames(redis_client, keys, jpegs, range(1))
    before = metric("owc_inference_frames_dropped_total", reason="dead_letter")
    stop = threading.Event()
    t = threading.Thread(target=worker.run, args=(stop,))
    t.start()
    try:
        dlq = wait_until(lambda: redis_client.xrange(Keys.dlq(keys.frames)), timeout=20, message="the DLQ entry")
    finally:
        stop.set()
        t.join(10)
    assert len(dlq) == 1 and b"delivered 3 times" in dlq[0][1][b"dlq_reason"]
    assert Frame.from_fields(dlq[0][1]).seq == 0
    assert redis_client.xlen(keys.labels) == 0
    assert pending(redis_client, keys) == 0
    assert metric("owc_inference_frames_dropped_total", reason="dead_letter") - before == 1


def test_a_batch_the_model_fails_on_is_read_frame_by_frame_through_the_banner_reader(
    make_worker: Callable[..., InferenceWorker], redis_client: redis.Redis, keys: Keys, jpegs: list[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker = make_worker("one", inference__batch_size=4)
    predict = worker.classifier.predict

    def batch_breaks(batch: np.ndarray) -> np.ndarray:
        if len(batch) > 1:
            raise RuntimeError("the batch exploded")
        return predict(batch)

    seen: list[int] = []
    frame = worker.banner.frame

    def counted(*args: Any, **kwargs: Any) -> Any:
        seen.append(args[1])  # captured_at
        return frame(*args, **kwargs)

    monkeypatch.setattr(worker.classifier, "predict", batch_breaks)
    monkeypatch.setattr(worker.banner, "frame", counted)
    add_frames(redis_client, keys, jpegs, range(4))
    assert worker.run(threading.Event(), max_messages=4) == 4
    assert sorted(lb.seq for lb in labels(redis_client, keys)) == [0, 1, 2, 3]
    assert len(seen) == 4  # the schedule, reuse and list check see every frame, as in a batch
    assert pending(redis_client, keys) == 0


def test_stale_frames_are_acked_dropped_and_counted(
    make_worker: Callable[..., InferenceWorker], redis_client: redis.Redis, keys: Keys, jpegs: list[bytes]
) -> None:
    worker = make_worker("s", inference__max_frame_age_ms=2000)
    add_frames(redis_client, keys, jpegs, range(5), captured_at=now_ms() - 10_000)
    add_frames(redis_client, keys, jpegs, range(5, 8))
    add_frames(redis_client, keys, jpegs, range(8, 9), captured_at=now_ms() + 60_000)  # a fast replay's clock
    before = metric("owc_inference_frames_dropped_total", reason="stale")
    assert worker.run(threading.Event(), max_messages=9) == 9
    assert sorted(lb.seq for lb in labels(redis_client, keys)) == [5, 6, 7, 8]
    assert pending(redis_client, keys) == 0
    assert metric("owc_inference_frames_dropped_total", reason="stale") - before == 5


def test_detection_frames_are_kept_with_a_ttl(
    make_worker: Callable[..., InferenceWorker], redis_client: redis.Redis, keys: Keys, jpegs: list[bytes],
    victory_model: Path, model: Path,
) -> None:
    worker = make_worker("d", model_path=victory_model, inference__detframe_ttl_s=120)
    add_frames(redis_client, keys, jpegs, range(3))
    assert worker.run(threading.Event(), max_messages=3) == 3
    got = labels(redis_client, keys)
    assert [lb.label for lb in got] == ["victory"] * 3
    for seq in range(3):
        key = keys.detframe("main", seq)
        assert redis_client.get(key) == jpegs[seq % len(jpegs)]
        assert 0 < redis_client.ttl(key) <= 120
    assert metric("owc_inference_consumer_lag_frames") == 0
    # a `none` verdict keeps no frame
    plain = make_worker("n", model_path=write_synthetic_model(
        model.parent / "none.onnx", width=64, height=32, channels=(8,), logit_bias=(50.0, 0.0, 0.0, 0.0)))
    add_frames(redis_client, keys, jpegs, range(3, 5))
    assert plain.run(threading.Event(), max_messages=2) == 2
    assert not redis_client.exists(keys.detframe("main", 3), keys.detframe("main", 4))


def test_owc_predict_on_png_and_jpeg_at_several_sizes(tmp_path: Path, model: Path) -> None:
    rng = np.random.default_rng(2)
    files = []
    for w, h in [(1920, 1080), (1280, 720), (800, 450)]:
        img = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (9, 9), 0)
        for ext in ("png", "jpg"):
            path = tmp_path / f"shot_{w}x{h}.{ext}"
            cv2.imwrite(str(path), img)
            files.append(path)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG but not really")
    args = [*(str(f) for f in files[:3]), str(broken), str(tmp_path / "missing.jpg"), *(str(f) for f in files[3:])]
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("OWC_")}
    res = subprocess.run(
        [sys.executable, "-m", "services", "predict", "--json", "--model", str(model), *args],
        capture_output=True, text=True, timeout=60, env=env, cwd=Path(__file__).resolve().parents[2],
    )
    assert res.returncode == 2, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["image"] for r in rows] == [str(f) for f in files]
    clf = Classifier(model)
    for row, path in zip(rows, files, strict=True):
        assert set(row) == {"image", "label", "confidence", "probabilities", "model"}
        assert row["model"] == clf.model_id and row["label"] in ("none", "victory", "defeat", "draw")
        assert row["confidence"] == pytest.approx(max(row["probabilities"].values()), abs=1e-5)
        # same answer as the worker's path for a frame of that size, read whatever the gate says (a
        # screenshot is a banner area holding still: the worker's schedule reads it)
        h, w = cv2.imread(str(path)).shape[:2]
        expected = clf.classify([(path.read_bytes(), w, h)], read_all=True)[0]
        assert row["label"] == expected.label
        assert row["probabilities"] == pytest.approx(expected.probs, abs=1e-5)
    assert "broken.png" in res.stderr and "missing.jpg" in res.stderr
    human = subprocess.run(
        [sys.executable, "-m", "services", "predict", "--model", str(model), str(files[0])],
        capture_output=True, text=True, timeout=60, env=env, cwd=Path(__file__).resolve().parents[2],
    )
    assert human.returncode == 0 and human.stdout.startswith(f"{files[0]}: ")


@pytest.mark.slow
def test_owc_bench_inference_smoke(model: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("OWC_")}
    res = subprocess.run(
        [sys.executable, "-m", "services", "bench", "inference", "--frames", "150", "--workers", "1",
         "--rounds", "1", "--quiet", "--model", str(model)],
        capture_output=True, text=True, timeout=120, env=env, cwd=Path(__file__).resolve().parents[2],
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["model"] == "synthetic-untrained-64x32-s0" and out["model_note"] == "model given with --model"
    assert out["frames_per_second"] > 0 and 0 < out["p50_ms"] <= out["p99_ms"]
    runs = [(r["mode"], r["workers"], r["frames"], r["round"]) for r in out["runs"]]
    assert runs == [("throughput", 1, 150, 1), ("latency", 1, 150, 1)]
    assert [(s["mode"], s["batch_size"]) for s in out["summary"]] == [("throughput", 8), ("latency", 1)]
    assert out["machine"]["cores"] >= 1 and out["frame"]["width"] == 640


def test_long_idle_consumers_with_nothing_pending_are_pruned(
    make_worker: Callable[..., InferenceWorker], redis_client: redis.Redis, keys: Keys, jpegs: list[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker = make_worker("live")
    worker.consumer.ensure_group()
    add_frames(redis_client, keys, jpegs, range(2))
    redis_client.xgroup_createconsumer(keys.frames, GROUP_INFERENCE, "gone-empty")
    redis_client.xreadgroup(GROUP_INFERENCE, "gone-holding", {keys.frames: ">"}, count=1)
    assert worker.prune_consumers() == []  # nobody idle for 30 minutes yet
    monkeypatch.setattr("services.inference.group.PRUNE_IDLE_MS", 0)
    assert worker.prune_consumers() == ["gone-empty"]
    names = {c["name"] for c in redis_client.xinfo_consumers(keys.frames, GROUP_INFERENCE)}
    assert names == {b"gone-holding"}  # its pending frame is kept for reclaiming


def test_the_lag_gauge_stays_true_after_an_aof_rewrite_and_a_restart(
    own_redis: RedisServer, keys: Keys, model: Path, settings_factory: Callable[..., Settings]
) -> None:
    """Redis < 7.2.4 forgets the group's read counter on an AOF rewrite: XINFO's lag then lies (issue 13.1)."""
    client = own_redis.client()
    client.xgroup_create(keys.frames, GROUP_INFERENCE, id="$", mkstream=True)

    def read_all(n: int) -> None:
        for _ in range(n):
            client.xadd(keys.frames, {"x": "1"})
        got = client.xreadgroup(GROUP_INFERENCE, "w", {keys.frames: ">"}, count=100)
        client.xack(keys.frames, GROUP_INFERENCE, *[i for _, entries in got for i, _ in entries])

    read_all(5)
    client.bgrewriteaof()
    wait_until(lambda: (p := client.info("persistence"))["aof_rewrites"] >= 1 and not p["aof_rewrite_in_progress"]
               and not p["aof_rewrite_scheduled"], timeout=20, message="the AOF rewrite")
    read_all(20)
    client.close()
    own_redis.restart()
    client = own_redis.client()
    try:
        settings = settings_factory(redis__url=own_redis.url, inference__model=str(model))
        worker = InferenceWorker(client, keys, Classifier.from_settings(settings.inference), settings.inference, "w")
        worker.refresh_lag()
        assert metric("owc_inference_consumer_lag_frames") == 0
        assert metric("owc_inference_consumer_pending_frames") == 0
    finally:
        client.close()


def test_a_running_worker_beats_without_frames_and_leaves_when_it_stops(
    make_worker: Callable[..., InferenceWorker], redis_client: redis.Redis, keys: Keys
) -> None:
    """The admin's "Workers" count: a worker waiting for frames (OBS not started yet) is running."""
    worker = make_worker("idle-one", inference__block_ms=200)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: redis_client.zscore(keys.inference_workers, "idle-one") is not None, timeout=10,
                   message="a heartbeat with no frame in the stream")
        first = redis_client.zscore(keys.inference_workers, "idle-one")
        wait_until(lambda: (redis_client.zscore(keys.inference_workers, "idle-one") or 0) > (first or 0),
                   timeout=10, message="a later heartbeat, still without frames")
        assert redis_client.xlen(keys.frames) == 0
        assert redis_client.hget(keys.inference_models, "idle-one") == worker.classifier.model_id.encode()
    finally:
        stop.set()
        thread.join(10)
    assert redis_client.zscore(keys.inference_workers, "idle-one") is None  # a clean stop says so
    assert redis_client.hget(keys.inference_models, "idle-one") is None


def test_the_lag_gauge_is_refreshed_every_second_only_while_reads_fill_their_batch(
    make_worker: Callable[..., InferenceWorker], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live feed's reads take every waiting frame (the lag is 0): its four round trips a second are
    not spent then (issue 22); a backlog brings the 1 s refresh back at once."""
    import types

    from services.inference import worker as worker_module

    now = [1000.0]
    monkeypatch.setattr(worker_module, "time", types.SimpleNamespace(
        monotonic=lambda: now[0], perf_counter=time.perf_counter, time=time.time))
    worker = make_worker("lagged")
    refreshed: list[float] = []
    monkeypatch.setattr(worker, "refresh_lag", lambda: refreshed.append(now[0]))
    for _ in range(6):  # a live feed, 1.5 s apart: no backlog
        worker._housekeeping(backlog=False)
        now[0] += 1.5
    assert refreshed == [1000.0]  # the first, then every 10 s
    worker._housekeeping(backlog=True)  # a full batch
    now[0] += 1.0
    worker._housekeeping(backlog=True)
    now[0] += 1.0
    worker._housekeeping(backlog=True)
    assert refreshed == [1000.0, 1010.0, 1011.0]


def test_a_live_feed_skips_the_reclaim_scan_until_a_frame_is_left_pending(
    make_worker: Callable[..., InferenceWorker], redis_client: redis.Redis, keys: Keys, jpegs: list[bytes]
) -> None:
    """No XAUTOCLAIM round trip while the commits' XPENDING summaries find nothing pending (issue 22); a
    frame another consumer read and never acked is still taken over while frames flow."""
    worker = make_worker("live", inference__claim_idle_ms=1000, inference__block_ms=50)
    worker.consumer.ensure_group()
    scans: list[int] = []
    real_reclaim = worker.consumer.reclaim
    worker.consumer.reclaim = lambda count: (scans.append(count), real_reclaim(count))[1]  # type: ignore[method-assign]
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    seq = iter(range(10_000))

    def feed(n: int) -> None:
        for _ in range(n):
            s = next(seq)
            add_frames(redis_client, keys, jpegs, range(s, s + 1))
            time.sleep(0.05)  # a live feed's pace (not a wait for a result)

    thread.start()
    try:
        feed(4)
        wait_until(lambda: len(labels(redis_client, keys)) >= 4, timeout=20, message="the first labels")
        scans.clear()
        feed(30)  # ~1.5 s, longer than claim_idle_ms
        wait_until(lambda: pending(redis_client, keys) == 0, timeout=20, message="every frame labelled")
        assert scans == []
        # a consumer that reads a frame and dies (in one transaction: the worker's blocked read cannot take it)
        pipe = redis_client.pipeline(transaction=True)
        pipe.xadd(keys.frames, Frame("main", 5000, now_ms(), "jpg", W, H, jpegs[0]).to_fields())  # type: ignore[arg-type]
        pipe.xreadgroup(GROUP_INFERENCE, "gone", {keys.frames: ">"}, count=1)
        assert pipe.execute()[1]
        feed(20)
        wait_until(lambda: 5000 in {lb.seq for lb in labels(redis_client, keys)}, timeout=20,
                   message="the gone consumer's frame reclaimed while frames flow")
        assert scans
    finally:
        stop.set()
        thread.join(10)
