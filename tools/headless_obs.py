"""A real OBS Studio for end-to-end tests, benches and demos: headless, private, disposable.

``ObsInstance(tmpdir, port, password, media_path).start()`` writes a private
``HOME`` (``~/.config/obs-studio``: obs-websocket enabled on ``port`` with
``password``, a 1920×1080 profile, and a scene collection whose program
scene ``Scene`` shows an ``image_source`` named ``Image`` full screen and,
if ``video_path`` is given, an ``ffmpeg_source`` named ``Video`` on top),
starts its own Xvfb and runs ``obs`` on it with software OpenGL, and
returns once obs-websocket answers. ``stop()`` closes OBS like a user
would (SIGTERM), ``kill()`` is a crash (SIGKILL); ``start()`` again brings
the same OBS back on the same port.

``replay_buffer_dir=PATH`` also configures the profile's output (Simple
mode, software x264 ``x264_lowcpu``, Matroska) with the replay buffer enabled
for ``replay_buffer_seconds`` and saving ``Replay_*.mkv`` into PATH;
``start_replay_buffer()`` starts it over obs-websocket (OBS never starts it by
itself, nor after a restart) and ``saved_replays()`` lists the clips OBS has
finished writing.
``websocket_debug=True`` runs obs-websocket with ``--websocket_debug``
(every message in OBS's log, screenshots included: not for long captures) so
``requests_received("SaveReplayBuffer")`` can count what clients asked for.
``output_size=(w, h)`` scales what outputs encode (the canvas and screenshots
stay ``width``×``height``). Without them the profile is as before: no output
section, OBS's defaults, replay buffer not available.

Needs the Debian packages ``obs-studio``, ``xvfb`` and ``libgl1-mesa-dri``.
The tests use it as ``tests.support.obs``; ``owc bench capture`` starts one
when no ``--obs-host`` is given.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

MISSING_REASON = "OBS Studio or Xvfb is not installed (apt-get install obs-studio xvfb libgl1-mesa-dri)"

SCENE = "Scene"
IMAGE = "Image"
VIDEO = "Video"
REPLAY_OUTPUT = "Replay Buffer"  # the output OBS 29 creates for the replay buffer


def obs_available() -> bool:
    return shutil.which("obs") is not None and shutil.which("Xvfb") is not None


def _muxer_arguments() -> set[str]:
    """Every argument of the running ``obs-ffmpeg-mux`` processes (the first is the file they write)."""
    args: set[str] = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile
            continue
        if argv and argv[0].endswith(b"obs-ffmpeg-mux"):
            args.update(a.decode(errors="replace") for a in argv[1:])
    return args


class ObsStartError(RuntimeError):
    pass


class ObsInstance:
    def __init__(
        self,
        tmpdir: Path,
        port: int,
        password: str,
        media_path: Path,
        video_path: Path | None = None,
        width: int = 1920,
        height: int = 1080,
        fps: int = 10,
        replay_buffer_dir: Path | None = None,
        replay_buffer_seconds: int = 10,
        output_size: tuple[int, int] | None = None,
        websocket_debug: bool = False,
    ) -> None:
        if not obs_available():
            raise ObsStartError(MISSING_REASON)
        self.tmpdir = Path(tmpdir)
        self.port = port
        self.password = password
        self.media_path = Path(media_path).resolve()
        self.video_path = Path(video_path).resolve() if video_path else None
        self.width = width
        self.height = height
        self.fps = fps
        self.replay_buffer_dir = Path(replay_buffer_dir).resolve() if replay_buffer_dir else None
        self.replay_buffer_seconds = replay_buffer_seconds
        self.output_size = output_size or (width, height)
        self.websocket_debug = websocket_debug
        self.home = self.tmpdir / "home"
        self.log_path = self.tmpdir / "obs-stdout.log"
        self.xvfb: subprocess.Popen[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.display: str | None = None
        self._configured = False

    # -- configuration ----------------------------------------------------
    def _write_config(self) -> None:
        cfg = self.home / ".config" / "obs-studio"
        (cfg / "basic" / "scenes").mkdir(parents=True, exist_ok=True)
        (cfg / "basic" / "profiles" / "owc").mkdir(parents=True, exist_ok=True)
        (cfg / "global.ini").write_text(
            "[General]\n"
            "FirstRun=true\n"
            "LastVersion=486539266\n"
            "EnableAutoUpdates=false\n"
            "[Basic]\n"
            "Profile=owc\nProfileDir=owc\nSceneCollection=owc\nSceneCollectionFile=owc\n"
            "ConfigOnNewProfile=false\n"
            "[BasicWindow]\n"
            "SysTrayEnabled=false\nSysTrayWhenStarted=false\nWarnBeforeStartingStream=false\n"
            "PreviewEnabled=false\nShowTransitions=false\n"
            "[OBSWebSocket]\n"
            "FirstLoad=false\n"
            "ServerEnabled=true\n"
            f"ServerPort={self.port}\n"
            "AlertsEnabled=false\n"
            f"AuthRequired={'true' if self.password else 'false'}\n"
            f"ServerPassword={self.password}\n",
            encoding="utf-8",
        )
        out_w, out_h = self.output_size
        (cfg / "basic" / "profiles" / "owc" / "basic.ini").write_text(
            "[General]\nName=owc\n"
            "[Video]\n"
            f"BaseCX={self.width}\nBaseCY={self.height}\nOutputCX={out_w}\nOutputCY={out_h}\n"
            f"FPSType=1\nFPSInt={self.fps}\n"
            "[Audio]\nSampleRate=48000\nChannelSetup=Stereo\n"
            + self._output_ini(),
            encoding="utf-8",
        )
        (cfg / "basic" / "scenes" / "owc.json").write_text(json.dumps(self._collection()), encoding="utf-8")
        self._configured = True

    def _output_ini(self) -> str:
        """Simple output mode; with ``replay_buffer_dir``, a replay buffer that saves there.

        The encoder is OBS's software x264 at its cheapest (``x264_lowcpu``:
        preset ultrafast), which needs no GPU; files are Matroska
        (``RecFormat`` is OBS 29's key, ``RecFormat2`` OBS 30's).
        """
        if self.replay_buffer_dir is None:
            return ""
        self.replay_buffer_dir.mkdir(parents=True, exist_ok=True)
        return (
            "[Output]\nMode=Simple\n"
            "[SimpleOutput]\n"
            f"FilePath={self.replay_buffer_dir}\n"
            "RecFormat=mkv\nRecFormat2=mkv\n"
            "RecQuality=Small\nRecEncoder=x264_lowcpu\nStreamEncoder=x264\n"
            "FileNameWithoutSpace=true\n"
            "RecRB=true\n"
            f"RecRBTime={self.replay_buffer_seconds}\nRecRBSize=256\nRecRBPrefix=Replay\n"
        )

    def _item(self, name: str, item_id: int, x: float, y: float, w: float, h: float) -> dict[str, Any]:
        return {
            "name": name,
            "source_uuid": self._uuids[name],
            "visible": True,
            "locked": False,
            "rot": 0.0,
            "pos": {"x": x, "y": y},
            "scale": {"x": 1.0, "y": 1.0},
            "align": 5,
            "bounds_type": 2,  # scale to inner bounds
            "bounds_align": 0,
            "bounds": {"x": w, "y": h},
            "crop_left": 0, "crop_top": 0, "crop_right": 0, "crop_bottom": 0,
            "id": item_id,
            "group_item_backup": False,
            "scale_filter": "disable",
            "blend_method": "default",
            "blend_type": "normal",
            "show_transition": {"duration": 0},
            "hide_transition": {"duration": 0},
            "private_settings": {},
        }

    def _source(self, name: str, kind: str, settings: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": name,
            "uuid": self._uuids[name],
            "id": kind,
            "versioned_id": kind,
            "settings": settings,
            "mixers": 0,
            "sync": 0,
            "flags": 0,
            "volume": 1.0,
            "balance": 0.5,
            "enabled": True,
            "muted": False,
            "push-to-mute": False,
            "push-to-talk": False,
            "hotkeys": {},
            "deinterlace_mode": 0,
            "deinterlace_field_order": 0,
            "monitoring_type": 0,
            "private_settings": {},
        }

    def _collection(self) -> dict[str, Any]:
        names = [SCENE, IMAGE] + ([VIDEO] if self.video_path else [])
        self._uuids = {n: str(uuid.uuid4()) for n in names}
        items = [self._item(IMAGE, 1, 0, 0, self.width, self.height)]
        sources = [self._source(IMAGE, "image_source", {"file": str(self.media_path), "unload": False})]
        if self.video_path:
            items.append(self._item(VIDEO, 2, self.width / 2, 0, self.width / 2, self.height / 2))
            sources.append(
                self._source(
                    VIDEO,
                    "ffmpeg_source",
                    {
                        "local_file": str(self.video_path),
                        "is_local_file": True,
                        "looping": True,
                        "restart_on_activate": False,
                        "close_when_inactive": False,
                        "hw_decode": False,
                    },
                )
            )
        scene = self._source(SCENE, "scene", {"id_counter": len(items), "custom_size": False, "items": items})
        return {
            "name": "owc",
            "current_scene": SCENE,
            "current_program_scene": SCENE,
            "scene_order": [{"name": SCENE}],
            "sources": [scene, *sources],
            "groups": [],
            "transitions": [],
            "current_transition": "Cut",
            "transition_duration": 0,
            "preview_locked": False,
            "scaling_enabled": False,
            "modules": {},
            "quick_transitions": [],
            "saved_projectors": [],
        }

    # -- processes --------------------------------------------------------
    def _start_xvfb(self) -> None:
        if self.xvfb is not None and self.xvfb.poll() is None:
            return
        read_fd, write_fd = os.pipe()
        self.xvfb = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{self.width}x{self.height}x24", "-nolisten", "tcp"],
            pass_fds=(write_fd,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        os.close(write_fd)
        with os.fdopen(read_fd) as pipe:
            number = pipe.readline().strip()
        if not number:
            raise ObsStartError("Xvfb did not start (no display number)")
        self.display = f":{number}"

    def start(self, timeout: float = 60.0) -> ObsInstance:
        if self.proc is not None and self.proc.poll() is None:
            return self
        if not self._configured:
            self._write_config()
        self._start_xvfb()
        assert self.display is not None
        env = {
            "HOME": str(self.home),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "DISPLAY": self.display,
            "LIBGL_ALWAYS_SOFTWARE": "1",
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_RUNTIME_DIR": str(self.tmpdir / "xdg"),
            "QT_QPA_PLATFORM": "xcb",
            "LANG": "C.UTF-8",
        }
        (self.tmpdir / "xdg").mkdir(mode=0o700, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            ["obs", "--multi", "--minimize-to-tray", "--disable-missing-files-check", "--collection", "owc",
             "--profile", "owc", "--scene", SCENE, *(["--websocket_debug"] if self.websocket_debug else [])],
            env=env,
            cwd=str(self.tmpdir),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        """Until obs-websocket identifies a client and the program scene renders."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise ObsStartError(f"OBS exited during start-up (code {self.proc and self.proc.returncode}); "
                                    f"see {self.log_path} and {self.obs_log_dir}")
            try:
                client = self.client()
                try:
                    client.send("GetSourceScreenshot", {"sourceName": SCENE, "imageFormat": "jpg",
                                                        "imageWidth": 64, "imageHeight": 36})
                    return
                finally:
                    client.disconnect()
            except Exception as exc:  # not up yet
                last = exc
            time.sleep(0.25)
        raise ObsStartError(f"OBS did not answer on port {self.port} within {timeout:.0f}s ({last}); "
                            f"see {self.log_path}")

    def client(self, timeout: float = 5.0) -> Any:
        """An obsws-python ReqClient with everything explicit (for test set-up and checks)."""
        from obsws_python import ReqClient

        # obsws-python logs every refused connection with a traceback while OBS starts
        logging.getLogger("obsws_python").setLevel(logging.CRITICAL)
        return ReqClient(host="127.0.0.1", port=self.port, password=self.password, timeout=timeout)

    # -- replay buffer (only with ``replay_buffer_dir``) -----------------------
    def replay_buffer_active(self) -> bool:
        client = self.client()
        try:
            return bool(client.send("GetReplayBufferStatus", raw=True).get("outputActive"))
        finally:
            client.disconnect()

    def start_replay_buffer(self, timeout: float = 20.0, buffered_s: float = 1.0) -> None:
        """Start the replay buffer over obs-websocket (like Controls → Start Replay Buffer).

        Returns once it holds ``buffered_s`` of video: OBS answers a
        ``SaveReplayBuffer`` on a buffer that has no frames yet with success
        but writes an empty clip. OBS does not start the buffer by itself,
        and not again after a restart.
        """
        if self.replay_buffer_dir is None:
            raise ObsStartError("this OBS has no replay buffer (ObsInstance(..., replay_buffer_dir=...))")
        if not self.replay_buffer_active():
            client = self.client()
            try:
                client.send("StartReplayBuffer")
            finally:
                client.disconnect()
        self._wait_replay(True, timeout)
        deadline = time.monotonic() + timeout
        while self.replay_buffered_s() < buffered_s:
            if time.monotonic() > deadline:
                raise ObsStartError(f"the replay buffer holds no video after {timeout:.0f}s; see {self.obs_log_dir}")
            time.sleep(0.1)

    def replay_buffered_s(self) -> float:
        """Seconds of video the running replay buffer has encoded (its output's duration)."""
        client = self.client()
        try:
            status = client.send("GetOutputStatus", {"outputName": REPLAY_OUTPUT}, raw=True)
        finally:
            client.disconnect()
        return float(status.get("outputDuration", 0)) / 1000.0

    def stop_replay_buffer(self, timeout: float = 20.0) -> None:
        if self.replay_buffer_active():
            client = self.client()
            try:
                client.send("StopReplayBuffer")
            finally:
                client.disconnect()
        self._wait_replay(False, timeout)

    def _wait_replay(self, active: bool, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.replay_buffer_active() != active:
            if time.monotonic() > deadline:
                raise ObsStartError(f"the replay buffer did not {'start' if active else 'stop'} within "
                                    f"{timeout:.0f}s; see {self.obs_log_dir}")
            time.sleep(0.1)

    def replay_files(self) -> list[Path]:
        """Every ``Replay_*.mkv`` in ``replay_buffer_dir``, oldest first, including one OBS is still writing."""
        if self.replay_buffer_dir is None:
            return []
        return sorted(self.replay_buffer_dir.glob("Replay*.mkv"), key=lambda p: (p.stat().st_mtime, p.name))

    def saved_replays(self) -> list[Path]:
        """The clips OBS has finished writing, in order of saving.

        OBS answers ``SaveReplayBuffer`` at once; a moment later (about 0.6 s)
        its log says ``Wrote replay buffer to '...'`` once it has handed the
        packets to an ``obs-ffmpeg-mux`` process, which only then creates and
        fills the file. A clip is finished when it is in the log, that
        process has exited, and the file is not empty.
        """
        written: list[Path] = []
        for log in sorted(self.obs_log_dir.glob("*.txt")):
            for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
                _, sep, rest = line.partition("Wrote replay buffer to '")
                if sep and rest.endswith("'"):
                    written.append(Path(rest[:-1]))
        if not written:
            return []
        muxing = _muxer_arguments()
        return [p for p in written if str(p) not in muxing and p.is_file() and p.stat().st_size > 0]

    def requests_received(self, request_type: str) -> int:
        """How many ``request_type`` requests obs-websocket has received (needs ``websocket_debug=True``).

        With ``--websocket_debug`` obs-websocket logs every message before it
        answers, so a request a client got an answer to is already counted.
        """
        if not self.websocket_debug:
            raise ObsStartError("requests are only logged with ObsInstance(..., websocket_debug=True)")
        needle = f'"requestType": "{request_type}"'
        count = 0
        for log in sorted(self.obs_log_dir.glob("*.txt")):
            incoming = False
            for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
                if "[WebSocketServer::" in line:
                    incoming = "Incoming message" in line
                elif incoming and line.endswith(needle):
                    count += 1
        return count

    @property
    def obs_log_dir(self) -> Path:
        return self.home / ".config" / "obs-studio" / "logs"

    def _end(self, sig: signal.Signals, timeout: float) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def stop(self, timeout: float = 15.0) -> None:
        """Close OBS like a user (SIGTERM: OBS sends ExitStarted and shuts down)."""
        self._end(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """Crash OBS (SIGKILL): the websocket just drops."""
        self._end(signal.SIGKILL, 10)

    def close(self) -> None:
        """Stop OBS and Xvfb (the fixture's teardown)."""
        self.stop()
        if self.xvfb is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.xvfb.pid, signal.SIGTERM)
            try:
                self.xvfb.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.xvfb.pid, signal.SIGKILL)
                self.xvfb.wait(10)
            self.xvfb = None

    def __enter__(self) -> ObsInstance:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


