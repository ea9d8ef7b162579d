"""Training entry points: ``train/imagenet.py`` (ResNet-50 ImageNet, DDP via torchrun, the
data pipeline chosen with ``--pipeline dali|ffcv|torch``) and its YAML recipes."""
