"""The docker backend's settings, as plain data.

Apart from :mod:`.docker_backend` (which needs torch through the student
connection) so that a batch's parent process can describe the backend to its
workers without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DockerSettings:
    image: str = "autograder-grader:latest"
    mount_host_python: bool = False
    python: str = "/opt/venv/bin/python"  # the interpreter inside the image (grading_images/*: its ENTRYPOINT)
    # A host asset cache mounted read-only over the image's own /opt/assets (the full
    # profile's models, too big to bake into every image). None: the image's assets.
    assets: Path | None = None
