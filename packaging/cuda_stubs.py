"""CPU bundle from a CUDA build of torch: drop the NVIDIA libraries, link against stubs.

Only CUDA builds of torch 2.14 / torchvision 0.29 can be installed on the build machine,
and their ``libtorch_cuda.so``, ``libtorch_python.so`` and torchvision's ``_C_stable.so``
name the CUDA runtime, cuBLAS, cuDNN, NCCL... as DT_NEEDED, so the dynamic loader refuses
to load torch without them. The CPU variant leaves those libraries (about 3 GB) and
triton (0.9 GB) out and puts, under each dropped library's name, a stub a few kB large:
it exports exactly the symbols the kept libraries import from that library (same symbol
versions) and every function answers with an error. ``cudaGetDeviceCount`` answers
``cudaErrorNoDevice`` with a count of 0, so ``torch.cuda.is_available()`` is False and
everything runs on the CPU, as on a machine without an NVIDIA driver. Needs binutils'
``readelf`` and a C compiler (``cc``) at build time; Linux x86_64 only.

Used by packaging/busviewer.spec (``BUSVIEWER_VARIANT=cpu``); ``python packaging/cuda_stubs.py
DIR`` lists the CUDA libraries a bundle folder still carries (the smoke test's check).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

#: Library file names that are NVIDIA's (CUDA runtime, math libraries, cuDNN, NCCL, ...).
CUDA_LIB = re.compile(
    r"^lib(cuda|cublas|cufft|cufile|curand|cusolver|cusparse|cupti|cudnn|nccl|nvrtc|nvJitLink"
    r"|nvjpeg|nvshmem|nvToolsExt|nvperf|nvblas|nvtx|checkpoint|pcsamplingutil)",
    re.IGNORECASE,
)
#: torch's own CUDA libraries that are only dlopen()ed on first CUDA use.
LAZY_TORCH_CUDA = {"libtorch_cuda_linalg.so", "libcaffe2_nvrtc.so"}
#: Folders (relative to the bundle) that hold only CUDA / GPU compiler files.
CUDA_DIRS = ("nvidia/", "triton/", "triton.libs/")
STUB_NOTE = "CUDA is not part of this CPU-only busviewer bundle"
#: The error each library's functions answer with (cudaErrorNoDevice for the runtime).
_ERROR = {"libcudart": 100, "libcudnn": 1001, "libnccl": 2, "libcurand": 201}


@dataclass(frozen=True)
class Symbol:
    name: str
    kind: str  # FUNC | OBJECT | TLS
    size: int
    version: str | None


def is_cuda_file(dest: str) -> bool:
    """Is this bundle path (relative, '/'-separated) an NVIDIA / triton file?"""
    dest = dest.replace(os.sep, "/")
    name = dest.rsplit("/", 1)[-1]
    return dest.startswith(CUDA_DIRS) or bool(CUDA_LIB.match(name)) or name in LAZY_TORCH_CUDA


def _readelf(args: list[str], path: str) -> str:
    return subprocess.run(["readelf", "-W", *args, path], capture_output=True, text=True, check=True).stdout


def needed(path: str) -> list[str]:
    """DT_NEEDED sonames of an ELF file ([] for anything else)."""
    try:
        text = _readelf(["-d"], path)
    except (subprocess.CalledProcessError, OSError):
        return []
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", text)


def soname(path: str) -> str:
    m = re.search(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", _readelf(["-d"], path))
    return m.group(1) if m else Path(path).name


def _dynsyms(path: str) -> list[list[str]]:
    try:
        text = _readelf(["--dyn-syms"], path)
    except (subprocess.CalledProcessError, OSError):
        return []
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 8 and parts[0].endswith(":") and parts[0][:-1].isdigit():
            rows.append(parts)
    return rows


def imported_names(path: str) -> set[str]:
    """Names (without version) of the undefined dynamic symbols of an ELF file."""
    return {p[7].split("@")[0] for p in _dynsyms(path) if p[6] == "UND" and len(p) >= 8}


def exported(path: str) -> dict[str, Symbol]:
    """Defined global/weak functions and objects of a library, by name."""
    out: dict[str, Symbol] = {}
    for p in _dynsyms(path):
        kind, bind, ndx, full = p[3], p[4], p[6], p[7]
        if ndx in ("UND", "ABS") or bind not in ("GLOBAL", "WEAK", "UNIQUE"):
            continue
        if kind not in ("FUNC", "IFUNC", "OBJECT", "TLS"):
            continue
        name, _, version = full.partition("@")
        size = int(p[2], 0) if p[2].isdigit() or p[2].startswith("0x") else 8
        out[name] = Symbol(name, "FUNC" if kind == "IFUNC" else kind, size, version.lstrip("@") or None)
    return out


def _function(i: int, sym: Symbol, code: int) -> str:
    n = sym.name
    head = '__attribute__((visibility("default")))'
    if re.search(r"(ErrorString|ErrorName|StatusString|StatusName|LastErrorString)$", n):
        return f'{head} const char *f{i}(void) __asm__("{n}");\nconst char *f{i}(void) {{ return NOTE; }}\n'
    if n in ("cudaGetDeviceCount", "cudaDriverGetVersion", "cudaRuntimeGetVersion", "ncclGetVersion"):
        ret = 0 if "GetVersion" in n and n.startswith("cuda") else code
        return (
            f'{head} long f{i}(int *out) __asm__("{n}");\nlong f{i}(int *out) {{ if (out) *out = 0; return {ret}; }}\n'
        )
    if re.match(r"cudnnGet(Cudart|MaxDevice)?Version$", n):
        code = 0
    return f'{head} long f{i}(void) __asm__("{n}");\nlong f{i}(void) {{ return {code}; }}\n'


def stub_source(symbols: list[Symbol], code: int) -> str:
    lines = [f"/* generated by packaging/cuda_stubs.py: {STUB_NOTE} */", f'static const char NOTE[] = "{STUB_NOTE}";']
    for i, sym in enumerate(symbols):
        if sym.kind == "FUNC":
            lines.append(_function(i, sym, code))
        else:
            tls = "__thread " if sym.kind == "TLS" else ""
            lines.append(
                f'__attribute__((visibility("default"), aligned(32))) {tls}char o{i}[{max(sym.size, 1)}] '
                f'__asm__("{sym.name}");'
            )
    return "\n".join(lines) + "\n"


def build_stub(real: str, wanted: set[str], out: Path, work: Path) -> Path:
    """Compile a stub with ``real``'s soname exporting the ``wanted`` names it defines."""
    symbols = sorted((s for n, s in exported(real).items() if n in wanted), key=lambda s: s.name)
    name = soname(real)
    base = re.sub(r"\.so.*$", "", name)
    work.mkdir(parents=True, exist_ok=True)
    src, script = work / f"{name}.c", work / f"{name}.map"
    src.write_text(stub_source(symbols, _ERROR.get(base, 1)), encoding="utf-8")
    cmd = ["cc", "-shared", "-fPIC", "-O1", "-o", str(out), str(src), f"-Wl,-soname,{name}"]
    by_version: dict[str, list[str]] = defaultdict(list)
    for s in symbols:
        by_version[s.version or ""].append(s.name)
    if any(by_version):
        nodes = []
        for version, names in sorted(by_version.items(), key=lambda kv: kv[0] == ""):
            body = " ".join(f"{n};" for n in names)
            nodes.append(f"{version or 'BUSVIEWER_STUB_BASE'} {{ global: {body} }};")
        script.write_text("\n".join(nodes) + "\n", encoding="utf-8")
        cmd.append(f"-Wl,--version-script,{script}")
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(cmd, check=True)
    return out


def split_cuda(binaries: list[tuple[str, str, str]], work: Path) -> tuple[list[tuple[str, str, str]], list[str]]:
    """Drop NVIDIA / triton libraries from a PyInstaller TOC; add stubs for the ones still needed.

    Returns the new TOC and the dropped bundle paths."""
    kept = [e for e in binaries if not is_cuda_file(e[0])]
    dropped = [e for e in binaries if is_cuda_file(e[0])]
    wanted_sonames = {n for _d, src, _t in kept for n in needed(src)}
    imports: set[str] = set()
    provided: set[str] = set()
    for _d, src, _t in kept:
        imports |= imported_names(src)
        provided |= set(exported(src))
    imports -= provided  # a stub must never interpose a symbol that a kept library defines
    stubs: list[tuple[str, str, str]] = []
    done: set[str] = set()
    for dest, src, typecode in dropped:
        if not os.path.isfile(src) or Path(dest).name not in wanted_sonames or dest in done:
            continue
        out = build_stub(src, imports, work / "lib" / dest, work / "src")
        stubs.append((dest, str(out), typecode))
        done.add(dest)
    return kept + stubs, [d for d, _s, _t in dropped]


def cuda_files(bundle: Path, min_bytes: int = 256 * 1024) -> list[tuple[str, int]]:
    """NVIDIA / triton files over ``min_bytes`` in a bundle folder (stubs are far smaller)."""
    found = []
    for path in bundle.rglob("*"):
        if path.is_file() and not path.is_symlink():
            rel = path.relative_to(bundle).as_posix()
            inner = rel.split("_internal/", 1)[-1]
            if is_cuda_file(inner) and path.stat().st_size >= min_bytes:
                found.append((rel, path.stat().st_size))
    return sorted(found)


if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "dist/busviewer")
    files = cuda_files(folder)
    for rel, size in files:
        print(f"{size / 1e6:10.1f} MB  {rel}")
    print(f"{len(files)} CUDA/triton file(s) over 256 kB in {folder}")
    sys.exit(1 if files else 0)
