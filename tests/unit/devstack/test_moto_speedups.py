"""The moto speed-ups patch only the moto they were written against."""

from __future__ import annotations

from importlib import metadata

import pytest
from moto.dynamodb.models import DynamoDBBackend

from devstack import moto_speedups


def test_another_moto_is_refused_naming_both_versions_and_left_unpatched(monkeypatch):
    real_version = metadata.version
    monkeypatch.setattr(metadata, "version",
                        lambda name: "5.3.0" if name == "moto" else real_version(name))
    before = DynamoDBBackend.transact_write_items

    with pytest.raises(moto_speedups.UnsupportedMotoVersion) as refused:
        moto_speedups.install()

    assert "moto 5.2.5" in str(refused.value) and "moto 5.3.0" in str(refused.value)
    assert DynamoDBBackend.transact_write_items is before


def test_the_expected_moto_is_the_one_the_project_pins():
    # requirements-dev.txt pins moto; the speed-ups must name the same version or the stack refuses to start.
    assert metadata.version("moto") == moto_speedups.MOTO_VERSION
