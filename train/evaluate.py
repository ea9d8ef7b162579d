#!/usr/bin/env python
"""Evaluate a checkpoint on clean and corrupted validation sets (the command line of
:mod:`ipmix_train.evaluate`; ``--help`` lists the options)::

    python train/evaluate.py --checkpoint runs/paper --val-data imagenet/val \\
        --imagenet-c imagenet-c/ --out results.json
"""

import sys

from ipmix_train.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
