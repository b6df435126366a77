"""Manage the VM that gives ``damo record --vm`` a kernel with full DAMON.

``damo vm setup`` installs qemu from Debian's packages, extracts Debian's newest Linux 6.12
kernel package into a cache directory and installs virtme-ng (``vng``) from PyPI into a
virtualenv in that cache directory. ``damo vm setup --kernel 6.17`` adds Debian's newest 6.17
from trixie-backports (sysfs ``intervals_goal``, Linux 6.15+), fetched with apt through a private
source list and package lists in the cache, so the machine's own apt setup is not changed.
``damo vm status`` says what is there.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from damo.errors import DamoError



@dataclass(frozen=True)
class KernelSeries:
    """A Debian kernel series that ``damo vm setup`` can fetch."""
    series: str              # "6.12": also the prefix of the cache directory's version names
    package_re: re.Pattern   # the image package's name, the version in group 1
    pattern: str             # the same, as the user reads it
    source: str | None       # an apt source line fetched through a private apt setup; None: the machine's own
    why: str                 # one line for --help and status


KERNELS: dict[str, KernelSeries] = {
    "6.12": KernelSeries("6.12", re.compile(r"^linux-image-(6\.12\.\d+)\+deb12-amd64$"),
                         "linux-image-6.12.*+deb12-amd64", None,
                         "Debian bookworm's 6.12: DAMON sysfs, vaddr, paddr (the default)"),
    # trixie-backports: 6.15+ has sysfs intervals_goal. Its config (checked 2026-12 for 6.17.13):
    # CONFIG_DAMON_SYSFS, _VADDR, _PADDR =y, 9p as modules under usr/lib/modules; it also has
    # CONFIG_DAMON_STAT_ENABLED_DEFAULT=y, so a kdamond outside sysfs runs from boot.
    "6.17": KernelSeries("6.17", re.compile(r"^linux-image-(6\.17\.\d+)\+deb13-amd64$"),
                         "linux-image-6.17.*+deb13-amd64",
                         "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
                         "http://deb.debian.org/debian trixie-backports main",
                         "Debian trixie-backports' 6.17: as 6.12, plus the intervals goal (intervals_goal)"),
}
DEFAULT_SERIES = "6.12"
KERNEL_PACKAGE_RE = KERNELS[DEFAULT_SERIES].package_re
VNG_PACKAGE = "virtme-ng"
# Host programs that vng needs -> the Debian package that provides them. depmod, busybox (for
# the initramfs that loads the 9p modules) and udevd (which names the virtio ports vng uses for
# the guest command's output and exit status) are seen missing on minimal machines.
HOST_TOOLS: dict[str, tuple[tuple[str, ...], str]] = {
    "qemu": (("qemu-system-x86_64",), "qemu-system-x86"),
    "depmod": (("depmod", "/usr/sbin/depmod", "/sbin/depmod"), "kmod"),
    "busybox": (("busybox",), "busybox-static"),
    "udevd": (("/usr/lib/systemd/systemd-udevd", "/lib/systemd/systemd-udevd", "udevd"), "udev"),
}


def find_tool(name: str) -> str | None:
    """Where a host program of HOST_TOOLS is, or None."""
    for candidate in HOST_TOOLS[name][0]:
        if os.path.isabs(candidate):
            if os.access(candidate, os.X_OK):
                return candidate
        else:
            found = shutil.which(candidate)
            if found:
                return found
    return None


def missing_packages() -> list[str]:
    """Debian packages to install for the host tools that are missing."""
    return [package for name, (_, package) in HOST_TOOLS.items() if find_tool(name) is None]


def cache_dir() -> Path:
    """Where the VM kernel and the virtme-ng virtualenv live (``DAMO_VM_CACHE`` overrides)."""
    override = os.environ.get("DAMO_VM_CACHE")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "damo" / "vm"


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split("."))


def kernel_series(name: str) -> KernelSeries:
    """The series named ``name`` ("6.12", "6.17"); a DamoError names the known ones."""
    if name not in KERNELS:
        raise DamoError(f"vm: unknown kernel series '{name}' (known: {', '.join(KERNELS)})")
    return KERNELS[name]


def cached_kernel(cache: Path | None = None, series: str = DEFAULT_SERIES) -> Path | None:
    """The newest kernel image of ``series`` extracted by ``damo vm setup``, if any."""
    cache = cache or cache_dir()
    prefix = re.escape(kernel_series(series).series)
    images = []
    for image in (cache / "kernels").glob("*/boot/vmlinuz-*"):
        match = re.match(rf"vmlinuz-({prefix}\.\d+)", image.name)
        if match:
            images.append((_version_key(match.group(1)), image))
    return max(images)[1] if images else None


def cached_kernel_path(cache: Path | None = None, series: str = DEFAULT_SERIES) -> str | None:
    """``cached_kernel`` as a string, or None."""
    kernel = cached_kernel(cache, series)
    return str(kernel) if kernel else None


def resolve_vm_kernel(value: str | None) -> str | None:
    """``--vm-kernel``: a series name ("6.17") is that series' cached image; anything else a path."""
    if value in KERNELS:
        kernel = cached_kernel(series=value)
        if kernel is None:
            raise DamoError(f"--vm-kernel {value}: not fetched yet; run `damo vm setup --kernel {value}`")
        return str(kernel)
    return value


def vng_bin_dir(cache: Path | None = None) -> Path | None:
    """The directory holding ``vng``: our cached virtualenv first, else PATH."""
    venv_bin = (cache or cache_dir()) / "venv" / "bin"
    if (venv_bin / "vng").exists():
        return venv_bin
    found = shutil.which("vng")
    return Path(found).parent if found else None


@dataclass
class Prerequisite:
    name: str
    found: str | None      # what was found (a path), None when missing
    fix: str               # one line telling how to get it


def prerequisites(cache: Path | None = None) -> list[Prerequisite]:
    """What ``--vm`` needs, and where each thing is (or how to get it)."""
    cache = cache or cache_dir()
    kernel = cached_kernel(cache)
    vng = vng_bin_dir(cache)
    tools = [Prerequisite(name, find_tool(name), f"run `damo vm setup` (apt-get install {package})")
             for name, (_, package) in HOST_TOOLS.items()]
    return tools + [
        Prerequisite("vm kernel", str(kernel) if kernel else None,
                     f"run `damo vm setup` (Debian's linux-image-6.12.*+deb12-amd64 into {cache}/kernels)"),
        Prerequisite("vng", str(vng / "vng") if vng else None,
                     f"run `damo vm setup` (pip install {VNG_PACKAGE} into {cache}/venv)"),
    ]


def missing_prerequisites(kernel: str | None = None) -> list[Prerequisite]:
    """The prerequisites of ``--vm`` that are missing (an explicit kernel replaces the cached one)."""
    missing = [p for p in prerequisites() if p.found is None]
    if kernel:
        missing = [p for p in missing if p.name != "vm kernel"]
    return missing


# --- setup ---------------------------------------------------------------------------------

def _run(cmd: list[str], what: str, quiet: bool = False) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(cmd, capture_output=quiet, text=True,
                                env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    except FileNotFoundError:
        raise DamoError(f"vm setup: {what}: '{cmd[0]}' is not installed") from None
    if result.returncode != 0:
        detail = ""
        if quiet and result.stderr:
            detail = f": {result.stderr.strip().splitlines()[-1]}"
        raise DamoError(f"vm setup: {what} failed (exit {result.returncode}{detail})")
    return result


def apt_options(cache: Path, series: str = DEFAULT_SERIES) -> list[str]:
    """apt's ``-o`` options for a series with its own source: a source list, package lists and
    archive cache under ``cache/apt/SERIES``, none of the machine's sources or preferences."""
    kernel = kernel_series(series)
    if kernel.source is None:
        return []
    base = cache / "apt" / series
    for sub in ("lists/partial", "archives/partial", "preferences.d"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    (base / "sources.list").write_text(kernel.source + "\n")
    return ["-o", f"Dir::Etc::SourceList={base / 'sources.list'}", "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={base / 'lists'}", "-o", f"Dir::Cache={base}",
            "-o", "Dir::Etc::Preferences=/dev/null", "-o", f"Dir::Etc::PreferencesParts={base / 'preferences.d'}"]


def newest_kernel_package(series: str = DEFAULT_SERIES, apt: list[str] | None = None) -> tuple[str, str] | None:
    """(package name, version) of the newest image package of ``series`` that apt knows."""
    kernel = kernel_series(series)
    regex = kernel.package_re.pattern.replace(r"\d+", "[0-9]+")
    result = _run(["apt-cache", *(apt or []), "search", "--names-only", regex],
                  f"listing Debian's {series} kernel packages", quiet=True)
    found = []
    for line in result.stdout.splitlines():
        name = line.split(" ", 1)[0]
        match = kernel.package_re.match(name)
        if match:
            found.append((_version_key(match.group(1)), name, match.group(1)))
    if not found:
        return None
    _, name, version = max(found)
    return name, version


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def setup(yes: bool = False, cache: Path | None = None, series: str = DEFAULT_SERIES) -> int:
    """Install what ``--vm`` needs (with ``series``' kernel), saying what is downloaded from where."""
    cache = cache or cache_dir()
    kernel = kernel_series(series)
    if not yes and not sys.stdin.isatty():
        raise DamoError("vm setup: downloads packages; run it on a terminal or pass --yes")
    packages = missing_packages()
    apt_needed = bool(packages) or cached_kernel(cache, series) is None
    if apt_needed and os.geteuid() != 0:
        raise DamoError("vm setup: installing qemu and fetching the kernel package use apt-get: run as root")
    plan = []
    if packages:
        plan.append(f"{' '.join(packages)} from Debian's packages (apt-get install; qemu is about 30 MB)")
    if cached_kernel(cache, series) is None:
        where = f" from {kernel.source.split('] ', 1)[-1]}" if kernel.source else ""
        plan.append(f"Debian's newest {kernel.pattern} package{where} (apt-get download, 100-170 MB), "
                    f"extracted into {cache}/kernels")
    if vng_bin_dir(cache) is None:
        plan.append(f"{VNG_PACKAGE} from PyPI (pip) into a virtualenv at {cache}/venv")
    if not plan:
        _say(f"vm setup: everything is already there (cache: {cache})")
        return 0
    _say("vm setup will download:")
    for item in plan:
        _say(f"  - {item}")
    if not yes:
        answer = input("proceed? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            _say("vm setup: nothing done")
            return 1
    cache.mkdir(parents=True, exist_ok=True)
    if packages:
        _say(f"vm setup: apt-get install {' '.join(packages)}")
        _run(["apt-get", "update"], "apt-get update", quiet=True)
        _run(["apt-get", "install", "-y", "--no-install-recommends", *packages],
             f"apt-get install {' '.join(packages)}", quiet=True)
    if cached_kernel(cache, series) is None:
        _install_kernel(cache, series)
    if vng_bin_dir(cache) is None:
        _install_vng(cache)
    for p in prerequisites(cache):
        # the default series' kernel is another `vm setup` (it is what plain --vm boots)
        if p.found is None and not (p.name == "vm kernel" and series != DEFAULT_SERIES):
            raise DamoError(f"vm setup: {p.name} is still missing after setup")
    if cached_kernel(cache, series) is None:
        raise DamoError(f"vm setup: the {series} kernel is still missing after setup")
    _say(f"vm setup: ready (kernel {cached_kernel(cache, series)}, vng {vng_bin_dir(cache)}/vng)")
    return 0


def _install_kernel(cache: Path, series: str = DEFAULT_SERIES) -> None:
    kernel = kernel_series(series)
    apt = apt_options(cache, series)
    package = newest_kernel_package(series, apt) if not apt else None
    if package is None:
        # A private source list starts with no package lists: fetch them (its ~300 kB index only).
        _run(["apt-get", *apt, "update"], "apt-get update", quiet=True)
        package = newest_kernel_package(series, apt)
    if package is None:
        where = kernel.source or "the apt sources (is Debian bookworm in them?)"
        raise DamoError(f"vm setup: apt knows no {kernel.pattern} package in {where}")
    name, version = package
    _say(f"vm setup: apt-get download {name}")
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        _download(name, Path(tmp), apt)
        debs = sorted(Path(tmp).glob("*.deb"))
        if not debs:
            raise DamoError(f"vm setup: apt-get download {name} produced no .deb file")
        staging = Path(tmp) / "root"
        _say(f"vm setup: extracting {debs[0].name} (dpkg-deb -x)")
        _run(["dpkg-deb", "-x", str(debs[0]), str(staging)], "dpkg-deb -x")
        target = cache / "kernels" / version
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        staging.replace(target)


def _download(name: str, where: Path, apt: list[str] | None = None) -> None:
    result = subprocess.run(["apt-get", *(apt or []), "download", name], cwd=where, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["?"])[-1]
        raise DamoError(f"vm setup: apt-get download {name} failed: {last}")


def _install_vng(cache: Path) -> None:
    venv = cache / "venv"
    _say(f"vm setup: python -m venv {venv} && pip install {VNG_PACKAGE}")
    _run([sys.executable, "-m", "venv", str(venv)], "creating the virtme-ng virtualenv")
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", VNG_PACKAGE],
         f"pip install {VNG_PACKAGE}")


def status() -> int:
    """Print each --vm prerequisite and where it is."""
    ok = True
    for p in prerequisites():
        if p.found:
            print(f"{p.name}: {p.found}")
        else:
            ok = False
            print(f"{p.name}: missing; {p.fix}")
    for series in KERNELS:
        if series != DEFAULT_SERIES:
            found = cached_kernel(series=series)
            print(f"vm kernel {series} (optional): {found or f'not fetched; run `damo vm setup --kernel {series}`'}")
    from damo import vm_accel
    print(f"acceleration: {vm_accel.would_use(cached_kernel_path())}")
    return 0 if ok else 1


DESCRIPTION = """\
Manage the VM that gives `damo record --vm` a kernel with full DAMON. `damo vm setup` installs
qemu and the tools virtme-ng needs with apt (root, Debian-like systems), Debian's newest Linux
6.12 kernel and virtme-ng into a cache directory (~/.cache/damo/vm, or $DAMO_VM_CACHE);
`--kernel 6.17` adds Debian trixie-backports' 6.17 (the intervals goal needs Linux 6.15+), used with
`damo record --vm --vm-kernel 6.17`. `damo vm status` says what is there."""

EXAMPLES = """\
examples:
  sudo damo vm setup --yes
  sudo damo vm setup --yes --kernel 6.17
  damo vm status"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="vm_command", metavar="ACTION", parser_class=type(parser))
    setup_parser = sub.add_parser("setup", help="install qemu, a Debian 6.12 kernel and virtme-ng")
    setup_parser.add_argument("-y", "--yes", action="store_true", help="do not ask before downloading")
    setup_parser.add_argument("--kernel", choices=list(KERNELS), default=DEFAULT_SERIES,
                              help="the kernel series to fetch: " +
                                   "; ".join(f"{k.series}: {k.why}" for k in KERNELS.values()) +
                                   f" (default: {DEFAULT_SERIES})")
    sub.add_parser("status", help="show the --vm prerequisites")


def run(args: argparse.Namespace) -> int:
    if args.vm_command == "setup":
        return setup(yes=args.yes, series=args.kernel)
    if args.vm_command == "status":
        return status()
    raise DamoError("vm: choose an action: setup or status")
