"""Input pipelines that realise IPMix: ``ffcv`` (CPU, Numba), ``dali`` (GPU or CPU) and
``torch`` (the plain PyTorch reference). Every backend yields the same batch contract:
``(images, labels)``, or ``((clean, aug_a, aug_b), labels)`` in JSD mode.
"""
