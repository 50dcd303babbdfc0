"""A real RabbitMQ cluster (Debian's rabbitmq-server, its MQTT plugin) on loopback ports, for tests.

Three nodes by default, each with its own node name, AMQP, distribution and MQTT ports and its data
and logs under one temporary directory; one Erlang cookie in a temporary HOME and one epmd on a port
of our own, so nothing is shared with a node the package may run on the machine. The first node boots
alone, the others find it through the classic peer list and join: started together they can race
into separate clusters. Nodes are killed (-9) and restarted like mosquitto; a restarted node keeps its
data directory, so it rejoins with its share of the quorum queues.

RabbitMQ is slow to boot on a busy small machine (~10 s a node): start one cluster per test module.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.support.mosquitto import free_port, wait_port
from tests.support.slowdown import scaled

SBIN = Path("/usr/lib/rabbitmq/bin")
SERVER = SBIN / "rabbitmq-server"
CTL = SBIN / "rabbitmqctl"
EPMD = shutil.which("epmd") or "/usr/bin/epmd"
# Sized for a native CPU: a node's boot is CPU-bound Erlang (scaled under emulation, test_arm.sh).
BOOT_TIMEOUT_S = scaled(120.0)
CTL_TIMEOUT_S = scaled(60.0)


def available() -> bool:
    return SERVER.exists() and CTL.exists() and Path(EPMD).exists()


@dataclass
class Node:
    name: str
    amqp_port: int
    dist_port: int
    mqtt_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class RabbitCluster:
    def __init__(self, workdir: Path, size: int = 3) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        tag = uuid.uuid4().hex[:6]
        self.nodes = [
            Node(f"qrt{tag}n{i}@localhost", free_port(), free_port(), free_port()) for i in range(size)
        ]
        self.epmd_port = free_port()
        self.home = workdir / "home"
        self._epmd: subprocess.Popen[bytes] | None = None

    # -- environment ----------------------------------------------------------------------------------

    def _env(self, node: Node | None = None) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "ERL_EPMD_PORT": str(self.epmd_port),
        }
        if node is not None:
            base = self.workdir / node.name.split("@")[0]
            env.update(
                RABBITMQ_NODENAME=node.name,
                RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
                RABBITMQ_NODE_PORT=str(node.amqp_port),
                RABBITMQ_DIST_PORT=str(node.dist_port),
                RABBITMQ_MNESIA_BASE=str(base / "mnesia"),
                RABBITMQ_LOG_BASE=str(base / "log"),
                RABBITMQ_CONFIG_FILE=str(base / "rabbitmq.conf"),
                RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "enabled_plugins"),
                RABBITMQ_PID_FILE=str(base / "rabbit.pid"),
            )
        return env

    def _write_node_files(self, node: Node) -> None:
        base = self.workdir / node.name.split("@")[0]
        base.mkdir(parents=True, exist_ok=True)
        # The first node knows no peers, so it boots at once instead of retrying the others first.
        seeds = [] if node is self.nodes[0] else [self.nodes[0]]
        peers = "\n".join(
            f"cluster_formation.classic_config.nodes.{i} = {n.name}" for i, n in enumerate(seeds, 1)
        )
        (base / "rabbitmq.conf").write_text(
            "\n".join(
                [
                    f"listeners.tcp.default = 127.0.0.1:{node.amqp_port}",
                    f"mqtt.listeners.tcp.default = 127.0.0.1:{node.mqtt_port}",
                    "mqtt.allow_anonymous = true",
                    "mqtt.vhost = /",
                    "mqtt.exchange = amq.topic",
                    # A test machine's disk is small and shared: do not block publishers at 50 MB free.
                    "disk_free_limit.absolute = 10MB",
                    "vm_memory_high_watermark.relative = 0.6",
                    "cluster_formation.peer_discovery_backend = classic_config",
                    peers,
                    "log.console = false",
                    "log.file.level = warning",
                    "",
                ]
            )
        )
        (base / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> RabbitCluster:
        self.home.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(uuid.uuid4().hex.upper())
            cookie.chmod(0o400)
        self._epmd = subprocess.Popen(
            [EPMD, "-port", str(self.epmd_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=self._env(),
        )
        wait_port(self.epmd_port)
        for node in self.nodes:
            self._write_node_files(node)
        self.start_node(self.nodes[0])
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(self.start_node, self.nodes[1:]))
        members = self.running_members()
        if sorted(members) != sorted(n.name for n in self.nodes):
            raise RuntimeError(f"the nodes formed no single cluster: {members}; logs in {self.workdir}")
        return self

    def start_node(self, node: Node) -> None:
        log = (self.workdir / f"{node.name.split('@')[0]}.out").open("ab")
        node.proc = subprocess.Popen(
            [str(SERVER)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self._env(node),
            start_new_session=True,  # the script and its beam share a group: one kill stops both
        )
        log.close()
        # The MQTT listener opens last in the boot: when it answers, the node is in the cluster.
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while True:
            try:
                wait_port(node.mqtt_port, timeout=1.0)
                return
            except TimeoutError:
                if node.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"RabbitMQ node {node.name} did not start: see {self.workdir}"
                    ) from None

    def kill_node(self, node: Node) -> None:
        """SIGKILL to the node's whole process group: a crash or a power cut of that machine."""
        if node.proc is not None and node.proc.poll() is None:
            os.killpg(node.proc.pid, signal.SIGKILL)
            node.proc.wait(10)
        node.proc = None

    def restart_node(self, node: Node) -> None:
        self.kill_node(node)
        self.start_node(node)

    def stop(self) -> None:
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(self.kill_node, self.nodes))
        if self._epmd is not None and self._epmd.poll() is None:
            self._epmd.kill()
            self._epmd.wait(5)
        self._epmd = None

    # -- inspection -----------------------------------------------------------------------------------

    def ctl(self, *args: str, node: Node | None = None, timeout: float = CTL_TIMEOUT_S) -> str:
        target = node or next(n for n in self.nodes if n.running)
        env = self._env(target)
        # rabbitmqctl is a distributed Erlang node too; its default port (node's + 10000) may not exist.
        port = str(free_port())
        env.update(RABBITMQ_CTL_DIST_PORT_MIN=port, RABBITMQ_CTL_DIST_PORT_MAX=port)
        out = subprocess.run(
            [str(CTL), "-n", target.name, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
        return out.stdout

    def running_members(self) -> list[str]:
        status = json.loads(self.ctl("cluster_status", "--formatter", "json"))
        return [str(n) for n in status.get("running_nodes", [])]

    def queue_messages(self, queue: str) -> int:
        """Messages in `queue` (ready and unacknowledged), as the cluster counts them."""
        rows = json.loads(self.ctl("list_queues", "name", "messages", "--formatter", "json"))
        return sum(int(r["messages"]) for r in rows if r["name"] == queue)

    @property
    def amqp_urls(self) -> Sequence[str]:
        return [f"amqp://guest:guest@127.0.0.1:{n.amqp_port}/%2F" for n in self.nodes]

    @property
    def mqtt_ports(self) -> Sequence[int]:
        return [n.mqtt_port for n in self.nodes]
