"""docs/security.md shows exactly the permission tables the code enforces."""

from __future__ import annotations

import re
from pathlib import Path

from anabranch.auth.rpc_rules import RULES
from anabranch.auth.wire_auth import RULES as WIRE_RULES

DOC = (Path(__file__).parents[3] / "docs" / "security.md").read_text()


def test_rpc_table_matches_the_rules() -> None:
    rows = dict(re.findall(r"^\| `(\w+)` \| [^|]+ \| (READ_UPDATE|READ|-) \|", DOC, re.M))
    assert set(rows) == set(RULES)
    for name, rule in RULES.items():
        if rule.resource is None:
            assert rows[name] == "-"
        elif not callable(rule.permission):
            assert rows[name] == rule.permission.name, name


def test_wire_table_matches_the_rules() -> None:
    rows = {name: (int(code), permission) for code, name, permission in
            re.findall(r"^\| (\d+) \| `(\w+)` \| (READ_UPDATE|READ) \|$", DOC, re.M)}
    assert rows == {kind.__name__: (kind.TYPE, permission.name) for kind, (permission, _) in WIRE_RULES.items()}
