"""Where the reader's models come from: the pinned PyPI packages that hold them (found without importing them),
their files checked against the model metadata's sha256, the recogniser's character list and the onnxruntime
sessions. Re-exported by :mod:`services.inference.reader`.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from services.common.infra.files import sha256_file
from services.inference import vision
from services.inference.sessions import onnxruntime, session_options


class ReaderError(RuntimeError):
    """The reader's package or files are missing or do not match the metadata."""


class Package(Protocol):
    """A pinned PyPI package holding model files (a :class:`vision.ReaderSpec`, or :func:`look_package`)."""

    @property
    def package(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def module(self) -> str: ...


@dataclass(frozen=True, slots=True)
class PackageRef:
    package: str
    version: str
    module: str


def look_package(spec: vision.ReaderSpec, look: vision.LookSpec) -> Package:
    """The package the second look's detector comes from: its own when named, else the reader's."""
    if look.package is None or look.version is None or look.module is None:
        return spec
    return PackageRef(look.package, look.version, look.module)


def package_file(spec: Package, relative: str) -> Path:
    """Path of ``relative`` inside the installed ``spec.package`` (without importing it)."""
    found = importlib.util.find_spec(spec.module)
    roots = list(found.submodule_search_locations or []) if found else []
    if not roots:
        raise ReaderError(
            f"the reader's model package {spec.package}=={spec.version} is not installed "
            f"(python module {spec.module!r} not found): run `make setup` or "
            f"`pip install -c constraints.txt {spec.package}=={spec.version}`"
        )
    path = Path(roots[0]) / relative
    if not path.is_file():
        raise ReaderError(f"{spec.package}: {relative} not found in {roots[0]} (expected version {spec.version})")
    return path


def load_charset(path: Path) -> list[str]:
    """CTC classes: blank, the dictionary's lines, then the space (PaddleOCR's layout)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return ["", *lines, " "]


def charset_source(spec: vision.ReaderSpec, session: Any) -> tuple[list[str], str]:
    """The recogniser's CTC classes and the sha256 of what they were read from (``spec.charset``: a file in the
    package, or ``onnx:KEY``, the model's metadata property KEY whose lines are joined by "\n")."""
    if not spec.charset.startswith(vision.ONNX_CHARSET):
        path = package_file(spec, spec.charset)
        return load_charset(path), sha256_file(path)
    key = spec.charset[len(vision.ONNX_CHARSET):]
    text = session.get_modelmeta().custom_metadata_map.get(key)
    if not text:
        raise ReaderError(
            f"reader model {spec.model} ({spec.package}=={spec.version}) has no metadata property {key!r} "
            f"holding its character list (reader.charset {spec.charset!r})"
        )
    return ["", *text.split("\n"), " "], hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_session(path: Path, threads: int, what: str) -> Any:
    """An onnxruntime CPU session for ``path``; a :class:`ReaderError` when it cannot be loaded."""
    ort = onnxruntime()
    try:
        return ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ReaderError(f"{what} {path} cannot be loaded: {exc}") from None


def check_sha256(path: Path, got: str, want: str, package: Package) -> None:
    if got != want:
        raise ReaderError(
            f"{path} has sha256 {got[:12]}…, the model metadata expects {want[:12]}… "
            f"({package.package}=={package.version}): reinstall with `make setup`"
        )
