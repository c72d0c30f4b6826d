"""The docker backend: one hardened container per sandbox with the agent as its pid 1.

The container: network ``none``, read-only root file system, every capability dropped,
``no-new-privileges``, user 65534, pids / memory (no extra swap) / CPU limits,
``/work`` and ``/tmp`` bound from private host folders (one size-capped tmpfs as root,
so they survive container restarts), ``put_dir`` folders bound read-only,
the agent script bound read-only. The docker socket is never mounted. The host talks to
the agent over the container's attached stdin/stdout, so a warm ``exec`` costs one
round trip on a local socket, not a ``docker exec``.

Needs a running engine (``scripts/docker-up.sh``) and the image (``tether sandbox
build-image``); ``docker_available()`` says whether both are there.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from typing import Any

from tether.sandbox._agent import WORKSPACE, AgentConnection, AgentLost, AgentSandbox, FrameReader, agent_path
from tether.sandbox.base import SandboxError, SandboxLimits
from tether.sandbox.cgroups import docker_oom_kills
from tether.sandbox.image import DEFAULT_TAG
from tether.sandbox.workspace import HostWorkspace

SANDBOX_UID = 65534
_client: Any = None
_client_lock = threading.Lock()


def shared_client() -> Any:
    """One docker SDK client per process (its connection pool is shared by every sandbox)."""
    global _client
    with _client_lock:
        if _client is None:
            from docker.client import DockerClient

            try:
                _client = DockerClient.from_env(timeout=60, max_pool_size=128)
                _client.ping()
            except Exception as exc:
                _client = None
                raise SandboxError(
                    f"no docker engine answers ({type(exc).__name__}); start one with scripts/docker-up.sh"
                ) from exc
        return _client


def docker_available(image: str = DEFAULT_TAG) -> tuple[bool, str]:
    """``(True, "")`` when an engine answers and ``image`` exists, else ``(False, why)``."""
    try:
        client = shared_client()
    except SandboxError as exc:
        return False, str(exc)
    from tether.sandbox.image import image_exists

    if not image_exists(client, image):
        return False, f"the image {image} does not exist; build it with `tether sandbox build-image`"
    return True, ""


class _DockerFrames(FrameReader):
    """Reads the agent's stdout out of docker's multiplexed attach stream (8-byte headers)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        super().__init__(reader)
        self.buffer = bytearray()
        self.stderr = bytearray()

    async def read_exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            header = await super().read_exactly(8)
            kind, size = header[0], struct.unpack(">I", header[4:])[0]
            payload = await super().read_exactly(size)
            if kind == 1:
                self.buffer += payload
            else:
                self.stderr = (self.stderr + payload)[-4096:]
        out = bytes(self.buffer[:n])
        del self.buffer[:n]
        return out


class DockerSandbox(AgentSandbox):
    """A hardened docker container (see the module docstring)."""

    backend = "docker"

    def __init__(self, limits: SandboxLimits | None = None, *, image: str = DEFAULT_TAG, cpus: float = 1.0) -> None:
        super().__init__(limits)
        self.image = image
        self.cpus = cpus
        self._workspace = HostWorkspace(SANDBOX_UID, self.limits.workspace_mb, prefix="tether-docker-")
        self._container: Any = None
        self._frames: _DockerFrames | None = None

    def _nproc_limit(self) -> int | None:
        # uid 65534 is shared by every container on the host: RLIMIT_NPROC would count them all.
        # The container's pids limit bounds processes instead.
        return None

    def _sandbox_host_uid(self) -> int | None:
        return SANDBOX_UID

    def _create(self, work: str) -> tuple[Any, socket.socket]:
        import docker.errors
        from docker.types import Ulimit

        client = shared_client()
        volumes = {
            str(agent_path()): {"bind": "/.tether/agent.py", "mode": "ro"},
            work: {"bind": WORKSPACE, "mode": "rw"},
            str(self._workspace.tmp): {"bind": "/tmp", "mode": "rw"},
        }
        for host, target, _ in self._mounts:
            volumes[host] = {"bind": target, "mode": "ro"}
        mem = f"{self.limits.memory_mb}m"
        try:
            container = client.containers.create(
                self.image,
                command=["python3", "-I", "-S", "/.tether/agent.py", *self._agent_args(sweep=True)],
                user=f"{SANDBOX_UID}:{SANDBOX_UID}",
                network_mode="none",
                read_only=True,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                pids_limit=self.limits.max_processes + 8,
                mem_limit=mem,
                memswap_limit=mem,
                nano_cpus=int(self.cpus * 1e9),
                ulimits=[Ulimit(name="core", soft=0, hard=0), Ulimit(name="nofile", soft=1024, hard=1024)],
                volumes=volumes,
                working_dir=WORKSPACE,
                hostname="sandbox",
                environment={},
                stdin_open=True,
                tty=False,
                detach=True,
                labels={"org.tether.sandbox": "1"},
            )
        except docker.errors.ImageNotFound as exc:
            raise SandboxError(f"the image {self.image} does not exist; run `tether sandbox build-image`") from exc
        except docker.errors.APIError as exc:
            raise SandboxError(f"docker could not create the sandbox: {exc.explanation or exc}") from exc
        try:
            sock = client.api.attach_socket(container.id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
            container.start()
        except docker.errors.APIError as exc:
            with contextlib.suppress(Exception):
                container.remove(force=True)
            raise SandboxError(f"docker could not start the sandbox: {exc.explanation or exc}") from exc
        raw = getattr(sock, "_sock", sock)
        return container, raw

    async def _launch(self) -> AgentConnection:
        work = await self._workspace.create()
        container, raw = await asyncio.to_thread(self._create, str(work))
        self._container = container
        raw.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=raw, limit=1 << 20)
        self._frames = _DockerFrames(reader)
        max_frame = (max(256 << 20, self.limits.max_output_bytes) * 4) // 3 + (1 << 20)
        return AgentConnection(self._frames, writer, max_frame)

    def startup_log(self) -> str:
        return bytes(self._frames.stderr).decode(errors="replace") if self._frames else ""

    def _oom_kills(self) -> int | None:
        return docker_oom_kills(self._container.id) if self._container is not None else None

    async def _teardown(self) -> None:
        container, self._container = self._container, None
        if container is not None:

            def remove() -> None:
                with contextlib.suppress(Exception):
                    container.remove(force=True)

            await asyncio.to_thread(remove)
        if self._closed:
            await self._workspace.remove()

    @property
    def container_id(self) -> str | None:
        """The running container's id."""
        return self._container.id if self._container is not None else None


__all__ = ["AgentLost", "DockerSandbox", "docker_available", "shared_client"]
