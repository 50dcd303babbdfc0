"""A device bundle: every file one device needs, prepared in memory, then written in one go.

Nothing touches the disk until every input has been validated and every file rendered, so a refusal
leaves the target exactly as it was. Each file is written atomically (temporary file, fsync, rename,
fsync of the directory): a laptop unplugged from an SD card mid-way leaves old or new files, never
half a key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from device import durable
from device.errors import ProvisionError

SECRET = 0o600
PUBLIC = 0o644


@dataclass(frozen=True)
class Bundle:
    root: Path
    # path relative to root -> (content, mode); device.toml is written last (see write()).
    files: dict[PurePosixPath, tuple[bytes, int]] = field(default_factory=dict)
    # Files that must leave the root (a secret the new configuration no longer allows).
    removals: set[PurePosixPath] = field(default_factory=set)

    def add(self, relative: str, content: bytes, mode: int = SECRET) -> None:
        self.files[PurePosixPath(relative)] = (content, mode)

    def remove(self, relative: str) -> None:
        self.removals.add(PurePosixPath(relative))

    def target(self, relative: PurePosixPath) -> Path:
        return self.root.joinpath(*relative.parts)

    def conflicts(self) -> list[Path]:
        """Files that exist with other content: re-running the same provisioning is not a conflict."""
        replaced = [
            self.target(rel)
            for rel, (content, _) in self.files.items()
            if self.target(rel).exists() and _content(self.target(rel)) != content
        ]
        return replaced + [self.target(rel) for rel in sorted(self.removals) if self.target(rel).exists()]

    def write(self) -> list[Path]:
        """Writes every file; the config goes last so it never points at material not yet there."""
        order = sorted(self.files, key=lambda rel: rel.name == "device.toml")
        written = []
        for rel in order:
            content, mode = self.files[rel]
            path = self.target(rel)
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            write_atomic(path, content, mode)
            written.append(path)
        # After the config, which no longer names them: a cut-off run leaves a config with its files.
        for rel in self.removals:
            self.target(rel).unlink(missing_ok=True)
        return written


def refuse_conflicts(paths: list[Path], *, force: bool) -> None:
    if paths and not force:
        listed = "\n  ".join(str(p) for p in paths)
        raise ProvisionError(
            f"these files exist with other content (pass --force to replace them):\n  {listed}"
        )


def write_atomic(path: Path, content: bytes, mode: int = SECRET) -> None:
    durable.write_atomic(path, content, mode)


def _content(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None
