"""IPMixConfig: presets, overrides, validation with precise errors."""

from __future__ import annotations

import pytest

from ipmix_ops import IPMixConfig


def test_imagenet_preset_is_the_authors_code_path():
    cfg = IPMixConfig.preset("imagenet")
    assert (cfg.k, cfg.t, cfg.depth_min, cfg.beta, cfg.severity) == (3, 3, 0, 4.0, 1.0)
    assert cfg.resolved_patch_sizes == (4, 8, 16, 32, 64, 224)
    assert cfg.patch_source == "mixed" and cfg.overflow == "wrap" and not cfg.all_ops
    assert cfg.n_ops == 10 and cfg.jsd and cfg.views == 3 and cfg.jsd_lambda == 12
    assert cfg.fractal_size == 256
    assert cfg == IPMixConfig()


def test_cifar_preset():
    cfg = IPMixConfig.preset("cifar")
    assert (cfg.beta, cfg.severity, cfg.patch_source, cfg.image_size) == (3.0, 3.0, "fractal", 32)
    assert cfg.resolved_patch_sizes == (4, 8, 16, 32)
    assert cfg.fractal_size == 36 and cfg.mean == (0.5, 0.5, 0.5)


def test_overrides_and_patch_size_capping():
    cfg = IPMixConfig.preset("imagenet", image_size=48, all_ops=True, jsd=False)
    assert cfg.resolved_patch_sizes == (4, 8, 16, 32, 48)
    assert cfg.n_ops == 15 and cfg.views == 1
    assert cfg.replace(k=5).k == 5 and cfg.k == 3
    assert IPMixConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("k", 0, "k must be an integer in [1, 16]"),
        ("t", -1, "t must be an integer in [0, 16]"),
        ("depth_min", 4, "depth_min must be an integer in [0, 3]"),
        ("beta", 0.0, "beta must be a number"),
        ("severity", 0.05, "severity"),
        ("overflow", "saturate", "overflow must be one of"),
        ("patch_source", "photo", "patch_source must be one of"),
        ("patch_sizes", (1, 4), "patch_sizes must all be >= 2"),
        ("image_size", 3, "image_size"),
        ("std", (0.2, 0.0, 0.2), "std values"),
        ("jsd", "yes", "jsd must be a bool"),
        ("k", 2.5, "k must be an integer"),
    ],
)
def test_bad_values_name_the_field(field, value, words):
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
        IPMixConfig.preset("imagenet", **{field: value})


def test_unknown_keys_and_presets_are_errors():
    with pytest.raises(ValueError, match="unknown IPMixConfig field.*chains"):
        IPMixConfig.preset("imagenet", chains=3)
    with pytest.raises(ValueError, match="unknown IPMix preset 'svhn'"):
        IPMixConfig.preset("svhn")


def test_frozen():
    cfg = IPMixConfig()
    with pytest.raises(AttributeError):
        cfg.k = 4
