"""Where local pods run: loopback subnets that meshes running side by side do not share."""

from __future__ import annotations

import socket

import pytest

from shopmesh.localmesh.placement import free_subnet


def test_a_free_subnet_is_one_nobody_listens_in_and_not_handed_out_twice() -> None:
    with socket.socket() as listener:
        listener.bind(("127.201.0.1", 0))
        listener.listen()
        assert free_subnet(low=201, high=202) == 202  # 201 has a listener
        with pytest.raises(RuntimeError, match=r"127\.201-202"):
            free_subnet(low=201, high=202)  # 202 is handed out already
