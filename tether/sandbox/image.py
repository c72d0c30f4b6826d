"""Build the docker sandbox image (``tether sandbox build-image``).

Two ways, one Dockerfile (``tether/sandbox/Dockerfile``, base image a build argument):

- offline (default): ``debootstrap`` a minimal Debian rootfs with python3, coreutils, grep,
  ripgrep and findutils from the Debian package mirror apt already uses, ``docker import``
  it as ``tether-sandbox-base:<suite>``, then build the Dockerfile on top of it with
  network ``none``. No image registry is contacted. The rootfs tarball is cached in
  tether's cache dir, so a rebuild takes seconds.
- ``base="debian:bookworm-slim"`` (or any Debian-like image): build from a registry image,
  installing the packages with apt inside the build.

Both skip the build when the tag already exists (``force=True`` rebuilds).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from tether.config import cache_dir
from tether.errors import UserError

DEFAULT_TAG = "tether-sandbox:latest"
PACKAGES = ("python3", "coreutils", "grep", "ripgrep", "findutils")


def docker_client() -> Any:
    """A docker SDK client for the local engine; raises ``UserError`` when none answers."""
    try:
        from docker.client import DockerClient
    except ImportError as exc:  # pragma: no cover - docker is a dependency
        raise UserError("the 'docker' Python package is not installed") from exc
    try:
        client = DockerClient.from_env(timeout=120)
        client.ping()
        return client
    except Exception as exc:
        msg = f"no docker engine answers ({type(exc).__name__}); start one with scripts/docker-up.sh"
        raise UserError(msg) from exc


def image_exists(client: Any, tag: str) -> bool:
    """True when ``tag`` is present in the local engine."""
    import docker.errors

    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def _apt_mirror() -> str:
    for source in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        try:
            text = source.read_text()
        except OSError:
            continue
        for m in re.finditer(r"(?:^deb\s+(?:\[[^\]]*\]\s+)?|^URIs:\s*)(https?://\S+)", text, re.M):
            if "security" not in m.group(1):
                return m.group(1)
    return "http://deb.debian.org/debian"


def _suite() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("VERSION_CODENAME=") and line.split("=", 1)[1].strip():
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "bookworm"


def rootfs_tarball(suite: str | None = None, log: Callable[[str], None] = print) -> Path:
    """Debootstrap (once, cached) a minimal rootfs with the sandbox packages; return its tarball."""
    suite = suite or _suite()
    out = cache_dir() / f"sandbox-rootfs-{suite}.tar"
    if out.exists():
        return out
    if shutil.which("debootstrap") is None:
        raise UserError("debootstrap is not installed (apt-get install debootstrap)")
    if os.geteuid() != 0:
        raise UserError("building the offline rootfs needs root (debootstrap)")
    work = cache_dir() / f"sandbox-rootfs-{suite}.d"
    shutil.rmtree(work, ignore_errors=True)
    mirror = _apt_mirror()
    log(f"debootstrap {suite} from {mirror} (a minute or two)...")
    cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", suite, str(work), mirror]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
        raise UserError(f"debootstrap failed: {' | '.join(tail)}")
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for item in (work / junk).glob("*"):
            if item.is_file():
                item.unlink()
    tmp = out.with_suffix(".tmp")
    subprocess.run(["tar", "-C", str(work), "--numeric-owner", "-cf", str(tmp), "."], check=True)
    tmp.rename(out)
    shutil.rmtree(work, ignore_errors=True)
    return out


def _context() -> io.BytesIO:
    dockerfile = resources.files("tether.sandbox").joinpath("Dockerfile").read_bytes()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    buf.seek(0)
    return buf


def build_image(
    tag: str = DEFAULT_TAG,
    *,
    base: str | None = None,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> str:
    """Build the sandbox image ``tag`` (offline from debootstrap unless ``base`` is given); return the tag."""
    client = docker_client()
    if not force and image_exists(client, tag):
        log(f"{tag} already exists (use --force to rebuild)")
        return tag
    if base is None:
        suite = _suite()
        base = f"tether-sandbox-base:{suite}"
        if force or not image_exists(client, base):
            tarball = rootfs_tarball(suite, log)
            log(f"docker import {tarball.name} -> {base}")
            client.api.import_image_from_file(str(tarball), repository=base.split(":")[0], tag=suite)
        build_args = {"BASE_IMAGE": base, "INSTALL_PACKAGES": "0"}
        network = "none"
    else:
        build_args = {"BASE_IMAGE": base, "INSTALL_PACKAGES": "1"}
        network = None
    log(f"docker build {tag} (BASE_IMAGE={base})")
    import docker.errors

    try:
        client.images.build(
            fileobj=_context(),
            custom_context=True,
            tag=tag,
            buildargs=build_args,
            network_mode=network,
            rm=True,
            forcerm=True,
            labels={"org.tether.sandbox": "1"},
        )
    except (docker.errors.BuildError, docker.errors.APIError) as exc:
        raise UserError(f"building {tag} failed: {exc}") from exc
    log(f"built {tag}")
    return tag
