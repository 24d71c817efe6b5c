"""The documents agree with the code: every limit in docs/validation.md is the constant in matcher/model.py, and
docs/privacy.md quotes the delay table that bench/anonymity_delay.py computes."""

from __future__ import annotations

import re
from pathlib import Path

from matcher import model

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_constant_named_in_the_validation_table_has_the_documented_value():
    text = (DOCS / "validation.md").read_text()
    named = re.findall(r"`([A-Z_]+) = (-?\d+)`", text)
    assert len(named) >= 8, "the validation table lost its constants"
    for name, value in named:
        assert getattr(model, name) == int(value), f"docs/validation.md says {name} = {value}"


def test_every_limit_in_the_model_is_documented():
    text = (DOCS / "validation.md").read_text()
    source = Path(model.__file__).read_text()
    limits = [name for name in re.findall(r"^([A-Z_]+) = ", source, re.M) if isinstance(getattr(model, name), int)]
    for name in limits:
        assert f"`{name} = " in text, f"{name} is a limit in matcher/model.py but not in docs/validation.md"


def test_the_privacy_documents_delay_table_is_the_one_the_hold_gives_today():
    from bench.anonymity_delay import table

    assert table() in (DOCS / "privacy.md").read_text(), "run python -m bench.anonymity_delay and update the table"
