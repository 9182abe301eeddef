"""Packaging pieces that run without building the bundle: ``--version`` provenance, the
desktop entry install/uninstall, and the CUDA stubs of the CPU bundle (packaging/cuda_stubs.py)
on a small CUDA-like library built here. The bundle itself: packaging/smoke.sh (make package)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from busviewer import cli
from busviewer.core import provenance

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "packaging"))
import cuda_stubs  # noqa: E402

SHA = "ab" * 32


def _write_cards(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "vgg-default-v1.json").write_text(
        json.dumps({"name": "vgg-default", "version": 1, "architecture": "vgg16", "sha256": SHA})
    )
    (folder / "ens-default").mkdir()
    (folder / "ens-default" / "ens-default-v2.json").write_text(
        json.dumps(
            {
                "name": "ens-default",
                "version": 2,
                "architecture": "ensemble",
                "sha256": "cd" * 32,
                "shipping": {"shards": []},
            }
        )
    )
    (folder / "README.md").write_text("not a card")


def test_version_reports_commit_libraries_and_shipped_models(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    _write_cards(tmp_path / "shipped")
    monkeypatch.setenv("BUSVIEWER_SHIPPED_MODELS", str(tmp_path / "shipped"))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert lines[0] == f"busviewer {provenance.__version__}"
    assert lines[1].startswith(f"commit: {head}"), lines
    assert lines[2] == "build: source"
    assert lines[3].startswith(f"torch: {version('torch')}")
    assert lines[4].startswith(f"torchvision: {version('torchvision')}")
    assert f"shipped model vgg-default:1 (vgg16): sha256 {SHA}" in lines
    assert f"shipped model ens-default:2 (ensemble): sha256 {'cd' * 32}" in lines  # a sharded one


def test_bundle_build_info_wins(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / provenance.BUILD_INFO_FILE).write_text(
        json.dumps(
            {
                "version": "9.9",
                "commit": "f" * 40,
                "variant": "cpu",
                "torch": "2.14.1+cu130",
                "torchvision": "0.29.1+cu130",
                "torch_cuda": None,
                "built": "2026-01-01T00:00:00+00:00",
            }
        )
    )
    monkeypatch.setattr(provenance.paths, "REPO_ROOT", tmp_path)
    monkeypatch.setenv("BUSVIEWER_SHIPPED_MODELS", str(tmp_path / "none"))
    text = provenance.provenance().text()
    assert "commit: " + "f" * 40 in text and "build: cpu bundle, built 2026-01-01" in text
    assert "torch: 2.14.1+cu130 (CPU only)" in text and "shipped models: none" in text


def test_desktop_entry_install_and_uninstall(tmp_path: Path) -> None:
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "data"))
    exe = str(tmp_path / "my apps" / "busviewer")
    subprocess.run(
        ["bash", str(ROOT / "packaging" / "desktop.sh"), "install", "--exec", exe],
        env=env,
        check=True,
        capture_output=True,
    )
    entry = tmp_path / "data" / "applications" / "busviewer.desktop"
    icon = tmp_path / "data" / "icons" / "hicolor" / "scalable" / "apps" / "busviewer.svg"
    lines = entry.read_text().splitlines()
    assert f'Exec="{exe}" %F' in lines and "Icon=busviewer" in lines
    assert icon.read_bytes() == (ROOT / "resources" / "busviewer.svg").read_bytes()
    subprocess.run(
        ["bash", str(ROOT / "packaging" / "desktop.sh"), "uninstall"], env=env, check=True, capture_output=True
    )
    assert not entry.exists() and not icon.exists()


# ------------------------------------------------------------------ CUDA stubs
FAKE_CUDART = r"""
const char *cudaGetErrorString(int e) { return e ? "real error" : "no error"; }
int cudaGetDeviceCount(int *n) { *n = 3; return 0; }
int cudaMalloc(void **p, unsigned long size) { (void)p; (void)size; return 0; }
int cudaUnusedByTorch(void) { return 0; }
int shared_table[4] = {1, 2, 3, 4};
"""
USER = r"""
const char *cudaGetErrorString(int e);
int cudaGetDeviceCount(int *n);
int cudaMalloc(void **p, unsigned long size);
int shared_table[4] = {7, 7, 7, 7};  /* defined here too: a stub must not interpose it */
int devices(void) { int n = -1; int rc = cudaGetDeviceCount(&n); return rc ? -rc : n; }
int alloc(void) { void *p; return cudaMalloc(&p, 16); }
const char *message(void) { return cudaGetErrorString(100); }
int table(void) { return shared_table[0]; }
"""
OTHER = r"""
extern int shared_table[4];  /* imported: libuser and the real library both define it */
int other(void) { return shared_table[1]; }
"""


def _cc(out: Path, source: str, *flags: str) -> None:
    src = out.with_suffix(".c")
    src.write_text(source)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(out), str(src), *flags], check=True)


def _call(lib: Path) -> tuple[int, int, bytes, int]:
    code = (
        "import ctypes, sys; lib = ctypes.CDLL(sys.argv[1]); lib.message.restype = ctypes.c_char_p; "
        "print(lib.devices(), lib.alloc(), lib.message().decode(), lib.table(), sep='|')"
    )
    out = subprocess.run([sys.executable, "-c", code, str(lib)], capture_output=True, text=True, check=True)
    a, b, c, d = out.stdout.strip().split("|")
    return int(a), int(b), c.encode(), int(d)


@pytest.mark.skipif(not (shutil.which("cc") and shutil.which("readelf")), reason="needs a C compiler and readelf")
def test_cuda_stub_replaces_a_versioned_cuda_library(tmp_path: Path) -> None:
    real, app = tmp_path / "real", tmp_path / "app"
    real.mkdir()
    app.mkdir()
    (real / "v.map").write_text("libcudart.so.99 { global: *; };\n")
    _cc(real / "libcudart.so.99", FAKE_CUDART, "-Wl,-soname,libcudart.so.99", f"-Wl,--version-script,{real / 'v.map'}")
    _cc(app / "libuser.so", USER, f"-L{real}", "-l:libcudart.so.99", "-Wl,-rpath,$ORIGIN")
    _cc(app / "libother.so", OTHER, f"-L{real}", "-l:libcudart.so.99")
    shutil.copy(real / "libcudart.so.99", app / "libcudart.so.99")
    assert _call(app / "libuser.so") == (3, 0, b"real error", 7)

    toc = [
        ("app/libuser.so", str(app / "libuser.so"), "BINARY"),
        ("app/libother.so", str(app / "libother.so"), "BINARY"),
        ("nvidia/cu99/lib/libcudart.so.99", str(real / "libcudart.so.99"), "BINARY"),
    ]
    new, dropped = cuda_stubs.split_cuda(toc, tmp_path / "stubs")
    assert dropped == ["nvidia/cu99/lib/libcudart.so.99"]
    stub = Path(dict((d, s) for d, s, _t in new)["nvidia/cu99/lib/libcudart.so.99"])
    syms = cuda_stubs.exported(str(stub))
    # only what the kept libraries import, never what one of them defines (shared_table)
    assert set(syms) == {"cudaGetErrorString", "cudaGetDeviceCount", "cudaMalloc"}
    assert {s.version for s in syms.values()} == {"libcudart.so.99"}
    assert cuda_stubs.soname(str(stub)) == "libcudart.so.99"

    shutil.copy(stub, app / "libcudart.so.99")  # the bundle: the stub under the real name
    devices, alloc, message, table = _call(app / "libuser.so")
    assert devices == -100  # cudaErrorNoDevice
    assert alloc == 100 and message == cuda_stubs.STUB_NOTE.encode() and table == 7


def test_cuda_file_names() -> None:
    for dest in (
        "nvidia/cu13/lib/libcublas.so.13",
        "torchvision.libs/libcudart.faf08d9a.so.13",
        "torch/lib/libtorch_cuda_linalg.so",
        "triton/backends/nvidia/bin/ptxas",
        "libcudnn.so.9",
    ):
        assert cuda_stubs.is_cuda_file(dest), dest
    for dest in (
        "torch/lib/libtorch_cuda.so",
        "torch/lib/libc10_cuda.so",
        "torch/lib/libtorch_cpu.so",
        "PySide6/Qt/lib/libQt6Core.so.6",
        "libcurl.so.4",
        "libcups.so.2",
    ):
        assert not cuda_stubs.is_cuda_file(dest), dest
