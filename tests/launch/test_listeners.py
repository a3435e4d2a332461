"""Reading Linux' socket tables to keep local meshes apart."""

from __future__ import annotations

from pathlib import Path

from shopmesh.launch.listeners import unused_subnet


def test_a_subnet_where_a_mesh_listens_is_not_picked(tmp_path: Path) -> None:
    """/proc/net/tcp as Linux writes it: 127.101.1.1:50052 and 127.0.0.1:9090 listen (0A),
    127.102.1.1 only has an established connection (01)."""
    (tmp_path / "net").mkdir()
    header = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"
    )
    rows = [
        "   0: 0101657F:C3C4 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 11 1",
        "   1: 0100007F:2382 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12 1",
        "   2: 0101667F:C3C4 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 13 1",
    ]
    (tmp_path / "net" / "tcp").write_text("\n".join([header, *rows]) + "\n")
    picked = {unused_subnet([0, 101, 102], proc=tmp_path) for _ in range(50)}
    assert picked == {102}
    assert unused_subnet([101], proc=tmp_path) == 101  # all taken: one of them all the same
