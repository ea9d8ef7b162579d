"""The reference backend (``build_loader("torch", ...)``, data: an ImageFolder directory):
a plain ``torch.utils.data.DataLoader`` over torchvision's ImageFolder, IPMix by the Pillow
reference of :mod:`ipmix_ops.reference` (:mod:`~pipelines.dataloader.loader`). Named
``dataloader`` so that no module of this package shadows ``torch``.
"""
