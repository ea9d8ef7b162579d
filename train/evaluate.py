#!/usr/bin/env python
"""Evaluate a checkpoint on clean and corrupted validation sets (the command line of
:mod:`ipmix_train.evaluate`; ``--help`` lists the options)::

    python train/evaluate.py --checkpoint runs/paper --val-data imagenet/val \\
        --imagenet-c imagenet-c/ --out results.json
"""

import sys

if __name__ == "__main__":
    # imported here, not at the top: the corruption workers re-import this file as their
    # __main__ and need none of it (ipmix_train.corrupt_stream)
    from ipmix_train.evaluate import main

    sys.exit(main())
