from __future__ import annotations

from collections.abc import Iterator

import pytest

from swtpm_harness import start_swtpm
from veritee.tpm.device import AkAlg, AttestationKey, EkKind, TpmDevice
from veritee.tpm.swtpm import SwtpmProcess


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwtpmProcess]:
    """One swtpm (a clone of the session template) shared by a test module."""
    with start_swtpm(tmp_path_factory.mktemp("node")) as process:
        yield process


@pytest.fixture
def tpm(node: SwtpmProcess) -> Iterator[TpmDevice]:
    with TpmDevice(node.tcti) as device:
        yield device
        assert device.open_handles() == [], "a test left transient objects or sessions loaded"


@pytest.fixture(scope="module")
def aks(node: SwtpmProcess) -> dict[tuple[AkAlg, EkKind], AttestationKey]:
    """Every AK algorithm under every EK kind, created once per module."""
    with TpmDevice(node.tcti) as device:
        return {(alg, parent): device.create_ak(alg, parent=parent) for alg in AkAlg for parent in EkKind}
