"""The torchvision/timm import fix works and leaves torchvision's Python parts usable."""

from __future__ import annotations

import subprocess
import sys


def test_timm_imports_through_compat():
    import timm
    import torchvision.transforms.functional as TF
    from scorenet import _compat

    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=3)
    assert sum(p.numel() for p in model.parameters()) > 0
    import torch

    img = torch.rand(3, 20, 30)
    assert TF.resize(img, [10, 15], antialias=True).shape == (3, 10, 15)
    _compat.ensure_torchvision()  # idempotent


def test_fresh_interpreter_plain_timm_import_fails_or_compat_fixes_it():
    """In a fresh process the compat import must make timm importable whatever torchvision is."""
    code = "import scorenet._compat, timm; print('ok', scorenet._compat.patched)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")
    plain = subprocess.run([sys.executable, "-c", "import timm"], capture_output=True, text=True, timeout=300)
    # Where torchvision's compiled ops are broken, plain timm fails and compat reports patching.
    if plain.returncode != 0:
        assert "torchvision::" in plain.stderr
        assert out.stdout.strip() == "ok True"
    else:
        assert out.stdout.strip() == "ok False"
