"""The broker side of a fleet: a mosquitto ACL and a mosquitto password file.

The ACL relies on username = device id: the client certificate's CN (`use_identity_as_username true`)
or the username in the password file. `%u` then confines each device to its own topics.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterable

# mosquitto_passwd's own parameters (mosquitto 2.x, "$7$"): PBKDF2-HMAC-SHA512, 12-byte salt, 64-byte
# hash, 101 iterations. The passwords we generate are 192-bit random tokens, so the low count costs
# nothing; using mosquitto's default keeps the file identical in kind to what its tool writes.
PBKDF2_ITERATIONS = 101
SALT_BYTES = 12


def acl(topic_prefix: str, consumer: str) -> str:
    return "\n".join(
        [
            "# mosquitto ACL written by qr-provision.",
            "# Devices: username = device id (client certificate CN with use_identity_as_username, or the",
            "# password file's user). Each one writes only below its own id, whatever its location.",
            f"pattern write {topic_prefix}/v1/+/%u/#",
            "",
            "# The central consumer reads every location's events and status.",
            f"user {consumer}",
            f"topic read {topic_prefix}/v1/#",
            "",
        ]
    )


def new_password() -> str:
    return secrets.token_urlsafe(24)


def password_entry(username: str, password: str, salt: bytes | None = None) -> str:
    """One line of a mosquitto password file: `user:$7$101$<salt b64>$<hash b64>`."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    b64 = base64.b64encode
    return f"{username}:$7${PBKDF2_ITERATIONS}${b64(salt).decode()}${b64(digest).decode()}"


def password_file(logins: Iterable[tuple[str, str]]) -> str:
    return "".join(password_entry(user, password) + "\n" for user, password in logins)
