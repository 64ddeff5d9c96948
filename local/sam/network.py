"""The private bridge of `make sam`'s Docker Engine.

SAM creates the function's container on the daemon's default network and maps the emulator's port
to 127.0.0.1 (it has no host-network mode), so the daemon needs a bridge. This one is ours: a Linux
bridge with one /24 of 10.213.0.0/16 (the gateway is this host), given to dockerd with iptables,
masquerading and ip6tables off. No NAT: a container reaches this host's addresses on the bridge, and
the stand-ins listen there. Its name and subnet follow from the state folder, so two work trees
never share one.
"""

from __future__ import annotations

import hashlib
import ipaddress
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Bridge:
    name: str
    gateway: str  # this host's address on the bridge: what containers reach
    prefix_length: int = 24

    @classmethod
    def for_state(cls, state: Path) -> Bridge:
        digest = hashlib.sha256(str(state).encode()).digest()
        return cls(name=f"regsam{digest[:3].hex()}", gateway=f"10.213.{digest[3]}.1")

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Interface(f"{self.gateway}/{self.prefix_length}").network

    @property
    def dockerd_args(self) -> tuple[str, ...]:
        return (f"--bridge={self.name}",)

    def exists(self) -> bool:
        return subprocess.run(["ip", "link", "show", self.name], capture_output=True, check=False).returncode == 0

    def create(self) -> None:
        """Create it afresh (a killed run may have left it), unless the subnet is another device's."""
        self.delete()
        taken = [n for n in _routed_networks() if n.overlaps(self.network)]
        if taken:
            raise SystemExit(f"{self.network} (for bridge {self.name}) overlaps a route of this host: {taken}")
        for command in (
            ["ip", "link", "add", "name", self.name, "type", "bridge"],
            ["ip", "addr", "add", f"{self.gateway}/{self.prefix_length}", "dev", self.name],
            ["ip", "link", "set", self.name, "up"],
        ):
            subprocess.run(command, check=True, capture_output=True, text=True)

    def delete(self) -> None:
        if self.exists():
            subprocess.run(["ip", "link", "delete", self.name], check=True, capture_output=True)


def _routed_networks() -> list[ipaddress.IPv4Network]:
    out = subprocess.run(["ip", "-4", "route", "show"], capture_output=True, text=True, check=True).stdout
    networks = []
    for line in out.splitlines():
        destination = line.split()[0]
        if destination != "default":
            networks.append(ipaddress.IPv4Network(destination, strict=False))
    return networks
