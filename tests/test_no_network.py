"""The suite runs with every non-loopback connection refused (tests/conftest.py, no_network)."""
from __future__ import annotations

import socket

import pytest


def test_the_network_is_out_of_reach():
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError, match="may not reach the network"):
        sock.connect(("93.184.216.34", 80))
