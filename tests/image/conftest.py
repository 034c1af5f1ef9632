"""Fixtures of the image tests (helpers: imagetools.py)."""
import pytest

from imagetools import VARIANTS, Hardened, docker, image_ref


@pytest.fixture(scope="module", params=VARIANTS)
def running(request):
    variant = request.param
    if docker("image", "inspect", image_ref(variant), check=False).returncode != 0:
        pytest.fail(f"{image_ref(variant)} is missing: run scripts/image.sh (make image) first")
    c = Hardened(variant)
    yield c
    c.remove()
